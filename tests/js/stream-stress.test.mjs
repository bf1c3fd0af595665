// stream-stress.test.mjs - long streamed replies on every slot at once, read slowly by
// some clients and dropped half-way by others, while the scheduler keeps adding events.
// Under ThreadSanitizer (`make test-tsan`) the server reports any race between the
// scheduler that writes a task's events and the HTTP threads that stream them; the
// test fails on any report, on a reply cut short, and on a server that does not stop
// cleanly. Traffic goes only to 127.0.0.1.
//   STRESS_TOKENS: reply length (serverlib.mjs: GEMMA8, GEMMA8_TOKENIZER_DIR)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http from "node:http";
import { makeDemoModel, startServer, stopServer } from "./serverlib.mjs";

const TOKENS = Number(process.env.STRESS_TOKENS ?? 2000);
const dir = mkdtempSync(join(tmpdir(), "gemma8-stress-"));
const MODEL = join(dir, "demo.gguf");

let srv;
let port;

before(async () => {
  makeDemoModel(MODEL);
  srv = await startServer(MODEL, ["-np", "4", "-c", String(4 * (TOKENS + 256)), "-t", "2", "--queue", "16"]);
  port = srv.port;
});

after(() => {
  try {
    if (srv && srv.proc.exitCode === null) srv.proc.kill("SIGKILL");
  } finally {
    rmSync(dir, { recursive: true, force: true }); // the models, logs and files of this run
  }
});

// Streams one request; reads slowly (pauses after each chunk) and, with dropAfter, hangs
// up after that many bytes. Resolves with the whole body and whether it was dropped.
function stream(path, body, { pauseMs = 0, dropAfter = 0 } = {}) {
  return new Promise((res, rej) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: "POST",
      headers: { "Content-Type": "application/json" } }, (r) => {
      let text = "";
      let bytes = 0;
      r.setEncoding("utf8");
      r.on("data", (d) => {
        text += d;
        bytes += d.length;
        if (dropAfter && bytes >= dropAfter) {
          req.destroy();
          res({ text, dropped: true, status: r.statusCode });
          return;
        }
        if (pauseMs) {
          r.pause();
          setTimeout(() => r.resume(), pauseMs);
        }
      });
      r.on("end", () => res({ text, dropped: false, status: r.statusCode }));
      r.on("error", (e) => (dropAfter ? res({ text, dropped: true }) : rej(e)));
    });
    req.on("error", (e) => (dropAfter ? res({ text: "", dropped: true }) : rej(e)));
    req.end(JSON.stringify(body));
  });
}

// logprobs with 20 alternatives a token make each event slow to write out, so the HTTP thread
// spends much of its time reading events while the scheduler adds more (the window of the race)
const chat = (seed) => ({ stream: true, max_tokens: TOKENS, ignore_eos: true, temperature: 1, seed,
  logprobs: true, top_logprobs: 20,
  stream_options: { include_usage: true }, messages: [{ role: "user", content: `Count to a big number ${seed}` }] });
const generate = (seed) => ({ prompt: `Tell a long story ${seed}`, stream: true,
  options: { num_predict: TOKENS, temperature: 1, seed } });

test("long streams on every slot, slow readers and hang-ups, no race and no cut reply", async () => {
  const runs = [
    stream("/v1/chat/completions", chat(1)),
    stream("/api/generate", generate(2), { pauseMs: 3 }),
    stream("/v1/chat/completions", chat(3), { dropAfter: 400000 }),
    stream("/v1/chat/completions", chat(4), { pauseMs: 2 }),
    stream("/api/generate", generate(5), { dropAfter: 20000, pauseMs: 2 }), // queued until a slot frees
    stream("/v1/chat/completions", chat(6)),
  ];
  const out = await Promise.all(runs);
  for (const [i, r] of out.entries()) {
    if (r.dropped) continue;
    assert.equal(r.status, 200, `stream ${i}`);
    if (!r.text.startsWith("{")) { // OpenAI: every token, then usage, then [DONE]
      const events = r.text.split("\n\n").filter((e) => e.startsWith("data: "));
      assert.equal(events.at(-1), "data: [DONE]", `stream ${i} ends with [DONE]`);
      const usage = JSON.parse(events.at(-2).slice(6)).usage;
      assert.equal(usage.completion_tokens, TOKENS, `stream ${i} generated every token`);
      assert.ok(!r.text.includes('"error"'), `stream ${i} has no error event`);
    } else { // Ollama: NDJSON, done last with the count
      const lines = r.text.trim().split("\n").map((l) => JSON.parse(l));
      const last = lines.at(-1);
      assert.equal(last.done, true, `stream ${i} ends with done`);
      // a random-weight model may draw <eos> before the limit; the count must match the stream
      assert.ok(last.eval_count > 0 && last.eval_count <= TOKENS);
      assert.equal(lines.length - 1 >= 1, true);
    }
  }
  assert.ok(out.some((r) => r.dropped), "some clients hung up");
  // the server still answers, and stops cleanly with no sanitizer report
  const ok = await fetch(`http://127.0.0.1:${port}/v1/completions`, { method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: "Hi", max_tokens: 4, temperature: 0 }) });
  assert.equal(ok.status, 200);
  const code = await stopServer(srv);
  const log = srv.log();
  assert.doesNotMatch(log, /ThreadSanitizer|AddressSanitizer|runtime error/, log.slice(0, 4000));
  assert.equal(code, 0, log.slice(-2000));
});
