// serve.mjs - time to first token and decode speed of `gemma8 serve` over HTTP,
// for 1 and N concurrent streaming chat requests (ignore_eos: every request
// generates the same number of tokens), then the time to first token of a new
// request that arrives while np - 1 others stream. A benchmark, not a test.
// --llama-server PATH runs llama.cpp's server on the same file instead (the anchor).
// --embed-gap instead measures what embedding requests cost a stream: its largest gap between two
// tokens alone, and while --embeds (20) embedding requests of --embed-words (400) words arrive.
// usage: node bench/serve.mjs -m MODEL.gguf [-t 2] [-np 4] [-n 64] [--streams 1,4] [--prompt-tokens 64]
//        [--llama-server PATH] [--embed-gap [--embeds 20] [--embed-words 400] [--runs 3]]
import { spawn } from "node:child_process";
import net from "node:net";
import { resolve } from "node:path";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const model = opt("-m");
if (!model) {
  console.error("usage: node bench/serve.mjs -m MODEL.gguf [-t 2] [-np 4] [-n 64] [--streams 1,4]");
  process.exit(2);
}
const threads = opt("-t", "2");
const slots = Number(opt("-np", "4"));
const nGen = Number(opt("-n", "64"));
const streams = opt("--streams", "1," + slots).split(",").map(Number);
const promptWords = Number(opt("--prompt-tokens", "64"));
const bin = resolve(process.env.GEMMA8 ?? "build/gemma8");
const llama = opt("--llama-server");

const port = await new Promise((res) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const url = `http://127.0.0.1:${port}`;
const common = ["-m", model, "--port", String(port), "-t", threads, "-np", String(slots), "-c", String(slots * 1024)];
const srv = llama
  ? spawn(llama, [...common, "--host", "127.0.0.1", ...(args.includes("--embed-gap") ? ["--embeddings"] : [])],
    { stdio: ["ignore", "ignore", "ignore"] })
  : spawn(bin, ["serve", ...common], { stdio: ["ignore", "ignore", "inherit"] });
for (let i = 0; ; i++) {
  try {
    if ((await fetch(url + "/health")).ok) break;
  } catch {}
  if (i > 600) throw new Error("the server did not start");
  await new Promise((r) => setTimeout(r, 100));
}

// common English words: about one token each, so the prompt has about --prompt-tokens tokens
const WORDS = ("the of and to in is was for on that with as by at from his her it an were are which this be " +
  "or has had not but one all their they there been have more new first who also after would when can into " +
  "time two other over only some most may used three out so any years these while where than made such well").split(" ");

// one streamed request; resolves with its time to first token and token times; onToken(i, time)
async function one(k, n = nGen, onFirst = () => {}, onToken = () => {}) {
  const words = Array.from({ length: promptWords }, (_, i) => WORDS[(i * 7 + k * 13) % WORDS.length]).join(" ");
  const t0 = performance.now();
  const r = await fetch(url + "/v1/chat/completions", {
    method: "POST",
    body: JSON.stringify({ messages: [{ role: "user", content: `Stream ${k}: ${words}` }], max_tokens: n,
      ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
  });
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let first = 0;
  let last = 0;
  let usage = null;
  let buf = "";
  let count = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!line.startsWith("data: {")) continue;
      const j = JSON.parse(line.slice(6));
      if (j.usage) usage = j.usage;
      if (j.choices?.[0]?.delta?.content) {
        if (!first) {
          first = performance.now();
          onFirst();
        }
        last = performance.now();
        onToken(++count, last);
      }
    }
  }
  return { ttft: (first - t0) / 1e3, decode: (last - first) / 1e3, tokens: usage?.completion_tokens ?? 0, end: last };
}

if (args.includes("--embed-gap")) {
  await embedGap();
  srv.kill("SIGTERM");
  process.exit(0);
}

// the largest gap between two tokens of a stream (after its first), alone and while embedding
// requests arrive (from its 10th token on)
async function embedGap() {
  const n = Number(opt("--embeds", "20"));
  const words = Number(opt("--embed-words", "400"));
  const text = (k) => Array.from({ length: words }, (_, i) => WORDS[(i * 7 + k * 13) % WORDS.length]).join(" ");
  const gap = (t) => Math.max(...t.slice(1).map((x, i) => x - t[i]));
  const alone = [];
  const loaded = [];
  await one(999); // warm-up
  for (let r = 0; r < Number(opt("--runs", "3")); r++) {
    const t1 = [];
    await one(r, nGen, () => {}, (i, t) => t1.push(t));
    const t2 = [];
    const pending = [];
    await one(r + 50, nGen, () => {}, (i, t) => {
      t2.push(t);
      if (i !== 10) return;
      for (let k = 0; k < n; k++) {
        const body = JSON.stringify({ input: text(k + 100 * r) });
        pending.push(fetch(url + "/v1/embeddings", { method: "POST", body }).then((x) => x.json()));
      }
    });
    const answered = (await Promise.all(pending)).filter((x) => x.data?.[0]?.embedding?.length > 0).length;
    alone.push(gap(t1));
    loaded.push(gap(t2));
    console.log(`run ${r + 1}: largest gap alone ${alone[r].toFixed(1)} ms, with ${n} embedding requests ` +
      `(${answered} answered) ${loaded[r].toFixed(1)} ms`);
  }
  const a = Math.max(...alone);
  const b = Math.max(...loaded);
  console.log(`largest gap over the runs: alone ${a.toFixed(1)} ms, with embeddings ${b.toFixed(1)} ms, ` +
    `${(b / a).toFixed(2)}x`);
}

console.log(`${llama ? "llama-server" : "gemma8 serve"}, ${model}, ${threads} threads, ${slots} slots, ${nGen} tokens a request, prompt ~${promptWords} words`);
await one(999); // warm-up: pages the model in
for (const n of streams) {
  const t0 = performance.now();
  const res = await Promise.all(Array.from({ length: n }, (_, k) => one(k + n * 100)));
  const wall = (Math.max(...res.map((r) => r.end)) - t0) / 1e3;
  const tokens = res.reduce((a, r) => a + r.tokens, 0);
  const ttft = res.map((r) => r.ttft);
  const perStream = res.map((r) => (r.tokens - 1) / r.decode);
  console.log(`${n} stream(s): aggregate ${(tokens / wall).toFixed(2)} tok/s over ${wall.toFixed(1)} s; ` +
    `per stream decode ${Math.min(...perStream).toFixed(2)}-${Math.max(...perStream).toFixed(2)} tok/s; ` +
    `TTFT ${Math.min(...ttft).toFixed(2)}-${Math.max(...ttft).toFixed(2)} s`);
}
if (slots >= 2) {
  // np - 1 long streams; once each has its first token, a new request arrives
  const started = [];
  const long = Array.from({ length: slots - 1 }, (_, k) => {
    let go;
    started.push(new Promise((r) => (go = r)));
    return one(k + 5000, nGen * 4, go);
  });
  await Promise.all(started);
  const mid = await one(7777);
  await Promise.all(long);
  console.log(`a new request while ${slots - 1} stream: TTFT ${mid.ttft.toFixed(2)} s, ` +
    `decode ${((mid.tokens - 1) / mid.decode).toFixed(2)} tok/s`);
}
srv.kill("SIGTERM");
