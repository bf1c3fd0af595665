// deploy.test.mjs - deploy/: nginx (Debian's) in front of two `gemma8 serve` on loopback with the
// shipped configuration (only its ports and fail_timeout changed), and the systemd unit checked by
// systemd-analyze verify.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BIN, makeDemoModel, startServer, stopServer, freePort, sleep } from "./serverlib.mjs";

const NGINX = process.env.NGINX ?? "/usr/sbin/nginx";
const dir = mkdtempSync(join(tmpdir(), "gemma8-deploy-"));
const MODEL = join(dir, "demo.gguf");
const ARGS = ["-np", "4", "-c", "8192", "-t", "1"];

let a, b, proxy, url;

async function startNginx(ports) {
  const port = await freePort();
  // the shipped file, pointed at this test's instances and port
  let conf = readFileSync("deploy/nginx/gemma8.conf", "utf8");
  conf = conf.replace("127.0.0.1:8081", `127.0.0.1:${ports[0]}`).replace("127.0.0.1:8082", `127.0.0.1:${ports[1]}`)
    .replace("listen 8080;", `listen 127.0.0.1:${port};`).replaceAll("fail_timeout=10s", "fail_timeout=2s");
  writeFileSync(join(dir, "gemma8.conf"), conf);
  for (const d of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, "nginx.conf"), [
    process.getuid() === 0 ? "user root;" : "",
    "worker_processes 1;", "daemon off;", `pid ${dir}/nginx.pid;`, `error_log ${dir}/error.log;`,
    "events { worker_connections 512; }",
    "http {", `access_log ${dir}/access.log;`, `client_body_temp_path ${dir}/body;`,
    `proxy_temp_path ${dir}/proxy;`, `fastcgi_temp_path ${dir}/fastcgi;`, `uwsgi_temp_path ${dir}/uwsgi;`,
    `scgi_temp_path ${dir}/scgi;`, `include ${dir}/gemma8.conf;`, "}"].join("\n"));
  const t = spawnSync(NGINX, ["-t", "-p", dir, "-c", join(dir, "nginx.conf")], { encoding: "utf8" });
  assert.equal(t.status, 0, t.stderr);
  const proc = spawn(NGINX, ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: "ignore" });
  const u = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(u + "/health")).ok) return { proc, url: u };
    } catch {}
    await sleep(25);
  }
  proc.kill("SIGKILL");
  throw new Error("nginx did not start: " + readFileSync(join(dir, "error.log"), "utf8"));
}

before(async () => {
  makeDemoModel(MODEL);
  a = await startServer(MODEL, [...ARGS, "-a", "a"]);
  b = await startServer(MODEL, [...ARGS, "-a", "b"]);
  proxy = await startNginx([a.port, b.port]);
  url = proxy.url;
});

after(async () => {
  try {
    if (proxy && proxy.proc.exitCode === null) {
      proxy.proc.kill("SIGTERM");
      await new Promise((res) => proxy.proc.on("exit", res));
    }
    for (const s of [a, b]) {
      if (!s) continue;
      const code = await stopServer(s);
      if (s.proc.signalCode !== "SIGKILL") assert.equal(code, 0);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true }); // the models, logs and files of this run
  }
});

const body = (prompt, n, stream) => JSON.stringify({ messages: [{ role: "user", content: prompt }], temperature: 0,
  max_tokens: n, stream });

// A streamed chat through base: {text, model (the instance's alias), done ([DONE] seen), error (if the
// stream broke)}.
async function streamChat(base, prompt, n, onFirst) {
  const got = { text: "", model: null, done: false };
  try {
    const r = await fetch(base + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" },
      body: body(prompt, n, true) });
    if (!r.ok) return { ...got, error: `HTTP ${r.status}` };
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of r.body) {
      buf += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line.startsWith("data: ")) continue;
        if (line === "data: [DONE]") {
          got.done = true;
          continue;
        }
        const ev = JSON.parse(line.slice(6));
        got.model = ev.model;
        if (onFirst) onFirst(), (onFirst = null);
        got.text += ev.choices?.[0]?.delta?.content ?? "";
      }
    }
    return got;
  } catch (e) {
    return { ...got, error: String(e.cause?.message ?? e.message) };
  }
}

async function chat(base, prompt, n) {
  const r = await fetch(base + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: body(prompt, n, false) });
  return { status: r.status, json: r.ok ? await r.json() : null };
}

// p, or {error: "hung"} if it has not settled after ms (the timer does not keep the test alive)
function withTimeout(p, ms) {
  let timer;
  const hung = new Promise((res) => (timer = setTimeout(() => res({ done: false, error: "hung" }), ms)));
  return Promise.race([p, hung]).finally(() => clearTimeout(timer));
}

test("16 concurrent streams through nginx: spread over both instances, each equal to its request alone", async () => {
  const prompts = Array.from({ length: 16 }, (_, i) => `Tell me fact number ${i}.`);
  const solo = [];
  for (const p of prompts) solo.push((await chat(a.url, p, 24)).json.choices[0].message.content);
  const got = await Promise.all(prompts.map((p) => withTimeout(streamChat(url, p, 24), 120000)));
  for (let i = 0; i < 16; i++) {
    assert.ok(got[i].done, JSON.stringify(got[i]));
    assert.equal(got[i].text, solo[i], `stream ${i} (instance ${got[i].model})`);
  }
  const per = { a: got.filter((g) => g.model === "a").length, b: got.filter((g) => g.model === "b").length };
  console.log(`# streams per instance: ${JSON.stringify(per)}`);
  assert.ok(per.a >= 4 && per.b >= 4 && per.a + per.b === 16, JSON.stringify(per));
});

// The pieces of a streamed reply as the client reads them: how many reads, and the lines in all.
async function reads(base, path, body) {
  const r = await fetch(base + path, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  assert.equal(r.status, 200);
  let n = 0, text = "";
  const dec = new TextDecoder();
  for await (const chunk of r.body) {
    n++;
    text += dec.decode(chunk, { stream: true });
  }
  return { n, lines: text.split("\n").filter((l) => l.trim()).length };
}

test("streams arrive through nginx piece by piece: server-sent events and Ollama's NDJSON", async () => {
  // 200 tokens, each a line of its own: a proxy that held them back would hand on a few large blocks
  const sse = await reads(url, "/v1/chat/completions", { messages: [{ role: "user", content: "Hi" }],
    temperature: 0, max_tokens: 200, stream: true });
  const nd = await reads(url, "/api/chat", { model: "a", messages: [{ role: "user", content: "Hi" }],
    options: { temperature: 0, num_predict: 200 } });
  console.log(`# reads through nginx: SSE ${sse.n} for ${sse.lines} lines, NDJSON ${nd.n} for ${nd.lines} lines`);
  assert.ok(sse.lines > 150 && sse.n > 50, JSON.stringify(sse));
  assert.ok(nd.lines > 150 && nd.n > 50, JSON.stringify(nd));
});

test("one instance killed mid-run: its streams end with an error, none hangs, the rest go to the other; restarted, it rejoins", async () => {
  const prompt = "Tell me a long story.";
  const solo = (await chat(b.url, prompt, 200)).json.choices[0].message.content;
  let started = 0;
  const streams = Array.from({ length: 16 }, () => withTimeout(streamChat(url, prompt, 200, () => started++), 120000));
  for (let i = 0; i < 400 && started < 4; i++) await sleep(10);
  const dead = new Promise((res) => a.proc.on("exit", res));
  a.proc.kill("SIGKILL");
  await dead; // from here a refuses connections: what nginx had not yet sent cannot reach it
  // requests nginx had not yet forwarded: to b (a refuses; nothing was sent, so nginx tries b)
  const after = await Promise.all(Array.from({ length: 6 }, (_, i) => chat(url, `After the crash ${i}.`, 4)));
  const got = await Promise.all(streams);
  assert.ok(got.every((g) => g.error !== "hung"), JSON.stringify(got.map((g) => g.error ?? "ok")));
  const failed = got.filter((g) => !g.done);
  const completed = got.filter((g) => g.done);
  console.log(`# after SIGKILL: ${completed.length} streams completed, ${failed.length} ended with an error`);
  assert.ok(failed.length >= 1, "no stream was on the killed instance");
  for (const g of completed) {
    assert.equal(g.model, "b");
    assert.equal(g.text, solo);
  }
  // a stream on the killed instance: cut (an error, or an end without [DONE]), after a's chunks if any
  for (const g of failed) assert.ok(g.model === "a" || g.model === null, JSON.stringify(g));
  assert.ok(failed.some((g) => g.model === "a"), "no failed stream had begun on a");
  for (const r of after) {
    assert.equal(r.status, 200);
    assert.equal(r.json.model, "b");
  }
  // the proxy keeps serving
  assert.equal((await chat(url, "Still there?", 4)).status, 200);
  // the killed instance, restarted on its port, gets requests again once fail_timeout has passed
  const port = a.port;
  a = await startServer(MODEL, [...ARGS, "-a", "a"], port);
  assert.equal(a.port, port);
  let seenA = false;
  for (let i = 0; i < 40 && !seenA; i++) {
    const r = await chat(url, `Back ${i}.`, 2);
    assert.equal(r.status, 200);
    seenA = r.json.model === "a";
    if (!seenA) await sleep(200);
  }
  assert.ok(seenA, "the restarted instance did not rejoin");
  const errors = readFileSync(join(dir, "error.log"), "utf8");
  assert.match(errors, /connect\(\) failed|prematurely closed|Connection reset/);
});

test("the systemd unit passes systemd-analyze verify", (t) => {
  const have = spawnSync("systemd-analyze", ["--version"]);
  if (have.status !== 0) return t.skip("systemd-analyze is not installed");
  // the unit as shipped, but with ExecStart on the program built here (verify checks it is executable)
  const unit = readFileSync("deploy/systemd/gemma8.service", "utf8").replace("/usr/local/bin/gemma8", resolve(BIN))
    .replace("/etc/gemma8/gemma8.env", resolve("deploy/systemd/gemma8.env"));
  const path = join(dir, "gemma8.service");
  writeFileSync(path, unit);
  const r = spawnSync("systemd-analyze", ["verify", path], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), "", "warnings: " + r.stderr);
  assert.ok(existsSync("deploy/systemd/gemma8.sysusers"));
  assert.match(unit, /^User=gemma8$/m);
  assert.match(unit, /^Restart=on-failure$/m);
  assert.match(unit, /^EnvironmentFile=/m);
});
