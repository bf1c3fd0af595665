// dropin.test.mjs - `gemma8 serve` in place of llama-server or Ollama: their extra endpoints and
// aliases, model names, CORS, keys, conversations as clients send them, server-wide defaults, and
// structured output from the Vercel AI SDK, LangChain JS and ollama-js with zod schemas (every
// object validated with ajv). Run by `make test` (node --test), on loopback.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { makeDemoModel, startServer as startServerOn, stopServer } from "./serverlib.mjs";

const require = createRequire(resolve(process.env.NPM_DIR ?? "third_party/npm") + "/");
const { Ollama } = require("ollama");
const Ajv2020 = require("ajv/dist/2020").default;
const z = require("zod/v4"); // zod 4's JSON Schema: .int() is bounded by +-(2^53 - 1)
const z3 = require("zod").z; // LangChain JS 0.3 takes zod 3 schemas
const { generateObject, streamText, Output } = require("ai");
const { createOpenAICompatible } = require("@ai-sdk/openai-compatible");
const { ChatOpenAI } = require("@langchain/openai");

const dir = mkdtempSync(join(tmpdir(), "gemma8-dropin-"));
// under a sanitizer the clients' structured-output runs (long constrained replies) are left to make test
const sanitized = !!process.env.GEMMA8_SANITIZED;
const MODEL = join(dir, "demo.gguf");
const startServer = (args) => startServerOn(MODEL, args);

let srv;
let NAME;

before(async () => {
  makeDemoModel(MODEL);
  srv = await startServer(["-np", "4", "-c", "4096", "-t", "1"]);
  NAME = (await (await fetch(srv.url + "/v1/models")).json()).data[0].id;
});

after(async () => {
  try {
    if (srv) await stopServer(srv);
  } finally {
    rmSync(dir, { recursive: true, force: true }); // the models, logs and files of this run
  }
});

const post = (url, body, headers = {}) =>
  fetch(url, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });
const greedy = { temperature: 0, max_tokens: 8 };
const ask = [{ role: "user", content: "Name a colour." }];
const chatText = async (url, body) => (await (await post(url, body)).json()).choices[0].message.content;

test("llama-server's aliases answer as the /v1 paths; /v1/health; GET /v1/models/{id}", async () => {
  const want = await chatText(srv.url + "/v1/chat/completions", { messages: ask, ...greedy });
  assert.equal(await chatText(srv.url + "/chat/completions", { messages: ask, ...greedy }), want);
  // /completions and /embeddings are llama-server's native forms (as in llama-server), /v1/... OpenAI's
  const c1 = await (await post(srv.url + "/v1/completions", { prompt: "Hello", ...greedy })).json();
  const c2 = await (await post(srv.url + "/completions", { prompt: "Hello", n_predict: 8, temperature: 0 })).json();
  assert.equal(c2.content, c1.choices[0].text);
  const e1 = await (await post(srv.url + "/v1/embeddings", { input: ["hi", "there"] })).json();
  for (const path of ["/embeddings", "/embedding"]) {
    const e2 = await (await post(srv.url + path, { content: ["hi", "there"] })).json();
    assert.deepEqual(e2.map((x) => x.index), [0, 1]);
    assert.deepEqual(e2[1].embedding[0], e1.data[1].embedding);
  }
  assert.deepEqual(await (await fetch(srv.url + "/v1/health")).json(), { status: "ok" });
  for (const id of [NAME, NAME + ":latest"]) {
    const r = await fetch(srv.url + "/v1/models/" + encodeURIComponent(id));
    assert.equal(r.status, 200, id);
    assert.equal((await r.json()).id, id);
  }
  const nope = await fetch(srv.url + "/v1/models/llama-3");
  assert.equal(nope.status, 404);
  assert.equal((await nope.json()).error.code, "model_not_found");
});

test("POST /completion: text, ids or a mix; n_predict, n_probs, return_tokens, stop_type, timings; streamed the same", async () => {
  const body = { prompt: "The sky is", n_predict: 6, temperature: 0, return_tokens: true, n_probs: 3 };
  const r = await (await post(srv.url + "/completion", body)).json();
  const oai = await (await post(srv.url + "/v1/completions", { prompt: "The sky is", max_tokens: 6, temperature: 0 })).json();
  assert.equal(r.content, oai.choices[0].text);
  assert.equal(r.stop, true);
  assert.equal(r.stop_type, "limit");
  assert.equal(r.tokens_predicted, 6);
  assert.equal(r.tokens.length, 6);
  assert.equal(r.completion_probabilities.length, 6);
  for (const p of r.completion_probabilities) {
    assert.equal(p.top_logprobs.length, 3);
    assert.ok(p.top_logprobs[0].logprob >= p.top_logprobs[2].logprob);
  }
  assert.equal(r.timings.predicted_n, 6);
  assert.ok(r.timings.predicted_per_second > 0);
  // the same prompt as ids, and mixed: <bos> as an id, then the text
  const ids = (await (await post(srv.url + "/tokenize", { content: "The sky is", add_special: true })).json()).tokens;
  const byIds = await (await post(srv.url + "/completion", { ...body, prompt: ids })).json();
  assert.deepEqual(byIds.tokens, r.tokens);
  const mixed = await (await post(srv.url + "/completion", { ...body, prompt: [ids[0], "The sky is"] })).json();
  assert.deepEqual(mixed.tokens, r.tokens);
  assert.equal(mixed.tokens_evaluated, ids.length);
  // streamed: {content, stop: false} pieces, then stop: true with the closing fields
  const sr = await post(srv.url + "/completion", { ...body, stream: true });
  const events = (await sr.text()).split("\n\n").filter((x) => x.startsWith("data: ")).map((x) => JSON.parse(x.slice(6)));
  assert.equal(events.filter((e) => !e.stop).map((e) => e.content).join(""), r.content);
  // each piece carries its token ids, asked for or not (llama-server's); the last one none
  const plain = await post(srv.url + "/completion", { ...body, return_tokens: false, stream: true });
  const pieces = (await plain.text()).split("\n\n").filter((x) => x.startsWith("data: ")).map((x) => JSON.parse(x.slice(6)));
  assert.deepEqual(pieces.filter((e) => !e.stop).flatMap((e) => e.tokens), r.tokens);
  assert.deepEqual(pieces.at(-1).tokens, []);
  assert.equal(events.at(-1).stop, true);
  assert.equal(events.at(-1).tokens_predicted, 6);
  const word = r.content.slice(2, 5);
  const byWord = await (await post(srv.url + "/completion", { ...body, stop: ["never-in-it", word] })).json();
  assert.equal(byWord.stop_type, "word");
  assert.equal(byWord.stopping_word, word); // which of the stop strings ended it
  assert.equal(byWord.content, r.content.slice(0, r.content.indexOf(word)));
  for (const bad of [{ prompt: [["a"], ["b"]] }, { prompt: [1, 9999999] }, { prompt: {} }, { n_predict: 2 },
    { prompt: "x", n_probs: 99 }, { prompt: "x", grammar: 5 }]) {
    const x = await post(srv.url + "/completion", bad);
    assert.equal(x.status, 400, JSON.stringify(bad));
    assert.ok((await x.json()).error.message);
  }
  // timings in the OpenAI replies too, as llama-server adds them
  assert.equal(oai.timings.predicted_n, 6);
});

test("/slots: list; save, restore, erase with --slot-save-path (names checked); id_slot and cache_prompt", async () => {
  const saveDir = mkdtempSync(join(dir, "slots-"));
  const s2 = await startServer(["-np", "2", "-c", "1024", "-t", "1", "--slot-save-path", saveDir, "--temp", "0"]);
  try {
    const q = { prompt: "What is the capital of France?", n_predict: 4, id_slot: 1 };
    const first = await (await post(s2.url + "/completion", q)).json();
    assert.equal(first.timings.prompt_n, first.tokens_evaluated); // all evaluated
    const slots = await (await fetch(s2.url + "/slots")).json();
    assert.equal(slots.length, 2);
    assert.equal(slots[0].n_ctx, 512);
    assert.ok(slots[1].n_past >= first.tokens_evaluated && slots[0].n_past === 0, JSON.stringify(slots));
    const saved = await (await post(s2.url + "/slots/1?action=save", { filename: "one.bin" })).json();
    assert.equal(saved.n_saved, slots[1].n_past);
    assert.ok(saved.n_written > 0);
    // the same prompt on slot 1 again reuses all but the last token; on slot 0 (empty) nothing
    const again = await (await post(s2.url + "/completion", q)).json();
    assert.equal(again.timings.prompt_n, 1);
    assert.equal(again.content, first.content);
    const restored = await (await post(s2.url + "/slots/0?action=restore", { filename: "one.bin" })).json();
    assert.equal(restored.n_restored, saved.n_saved);
    const on0 = await (await post(s2.url + "/completion", { ...q, id_slot: 0 })).json();
    assert.equal(on0.timings.prompt_n, 1);
    assert.equal(on0.content, first.content);
    const noCache = await (await post(s2.url + "/completion", { ...q, id_slot: 0, cache_prompt: false })).json();
    assert.equal(noCache.timings.prompt_n, first.tokens_evaluated);
    const erased = await (await post(s2.url + "/slots/0?action=erase", {})).json();
    assert.ok(erased.n_erased > 0);
    assert.equal((await (await fetch(s2.url + "/slots")).json())[0].n_past, 0);
    for (const [path, body, status] of [["/slots/0?action=save", { filename: "../x.bin" }, 400],
      ["/slots/0?action=save", { filename: ".hidden" }, 400], ["/slots/0?action=save", {}, 400],
      ["/slots/5?action=save", { filename: "a" }, 400], ["/slots/0?action=fly", { filename: "a" }, 400],
      ["/slots/0?action=restore", { filename: "missing.bin" }, 400], ["/slots/x", {}, 400]]) {
      const r = await post(s2.url + path, body);
      assert.equal(r.status, status, path + " " + JSON.stringify(body));
    }
    assert.equal((await post(s2.url + "/completion", { ...q, id_slot: 7 })).status, 400);
  } finally {
    await stopServer(s2);
  }
  // without --slot-save-path: 501 for save; with --no-slots: GET /slots is 501
  const s3 = await startServer(["-np", "1", "-c", "512", "-t", "1", "--no-slots", "--alias", "b,a,c", "--tags", "x,y"]);
  try {
    assert.equal((await post(s3.url + "/slots/0?action=save", { filename: "a" })).status, 501);
    assert.equal((await fetch(s3.url + "/slots")).status, 501);
    const m = (await (await fetch(s3.url + "/v1/models")).json()).data[0];
    assert.equal(m.id, "a");
    assert.deepEqual(m.aliases, ["b", "a", "c"]);
    assert.deepEqual(m.tags, ["x", "y"]);
    assert.equal((await post(s3.url + "/v1/chat/completions", { model: "c", messages: ask, max_tokens: 1 })).status, 200);
  } finally {
    await stopServer(s3);
  }
});

test("logit_bias in OpenAI's and llama.cpp's forms; max_tokens 0 and dimensions answered as OpenAI does", async () => {
  const base = { prompt: "The sky is", n_predict: 3, temperature: 0, return_tokens: true };
  const plain = await (await post(srv.url + "/completion", base)).json();
  const first = plain.tokens[0];
  const other = first === 1000 ? 1001 : 1000;
  const forms = [{ [String(first)]: -100, [String(other)]: 100 }, [[first, false], [other, 50]], { [String(other)]: 100 }];
  for (const logit_bias of forms) {
    const r = await (await post(srv.url + "/completion", { ...base, logit_bias })).json();
    assert.equal(r.tokens[0], other, JSON.stringify(logit_bias));
    const o = await (await post(srv.url + "/v1/completions", { prompt: "The sky is", max_tokens: 1, temperature: 0, logprobs: 1,
      logit_bias })).json();
    assert.equal(o.choices[0].logprobs.tokens.length, 1);
  }
  // a text stands for its tokens: banning the first token's text changes the first token
  const piece = (await (await post(srv.url + "/detokenize", { tokens: [first] })).json()).content;
  const banned = await (await post(srv.url + "/completion", { ...base, logit_bias: [[piece, false]] })).json();
  assert.notEqual(banned.tokens[0], first);
  for (const bad of [{ "x": "y" }, [[1]], { "-3": 1 }, { "9999999": 1 }, [[1, "a"]], 5, { "": 1 }]) {
    const r = await post(srv.url + "/v1/chat/completions", { messages: ask, logit_bias: bad });
    assert.equal(r.status, 400, JSON.stringify(bad));
    assert.match((await r.json()).error.message, /logit_bias/);
  }
  const zero = await post(srv.url + "/v1/chat/completions", { messages: ask, max_tokens: 0 });
  assert.equal(zero.status, 400);
  assert.match((await zero.json()).error.message, /max_tokens/);
  assert.equal((await post(srv.url + "/v1/embeddings", { input: "x", dimensions: 64 })).status, 200);
  const d = await post(srv.url + "/v1/embeddings", { input: "x", dimensions: 32 });
  assert.equal(d.status, 400);
  assert.match((await d.json()).error.message, /dimensions/);
});

test("n > 1: several choices, each its own sequence (seed + i), streamed with their indexes", async () => {
  const req = { messages: ask, max_tokens: 6, temperature: 1, seed: 11 };
  const r = await (await post(srv.url + "/v1/chat/completions", { ...req, n: 3 })).json();
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  for (let i = 0; i < 3; i++) {
    const one = await chatText(srv.url + "/v1/chat/completions", { ...req, seed: 11 + i });
    assert.equal(r.choices[i].message.content, one, `choice ${i}`);
  }
  assert.equal(r.usage.completion_tokens, 18);
  const sr = await post(srv.url + "/v1/chat/completions", { ...req, n: 3, stream: true, stream_options: { include_usage: true } });
  const events = (await sr.text()).split("\n\n").filter((x) => x.startsWith("data: {")).map((x) => JSON.parse(x.slice(6)));
  const text = ["", "", ""];
  for (const e of events) for (const c of e.choices) text[c.index] += c.delta.content ?? "";
  assert.deepEqual(text, r.choices.map((c) => c.message.content));
  assert.equal(events.at(-1).usage.completion_tokens, 18);
  const comp = await (await post(srv.url + "/v1/completions", { prompt: "Hi", max_tokens: 3, temperature: 0, n: 2 })).json();
  assert.equal(comp.choices.length, 2);
  assert.equal(comp.choices[0].text, comp.choices[1].text);
  for (const n of [0, 17, 1.5, "2"]) assert.equal((await post(srv.url + "/v1/chat/completions", { ...req, n })).status, 400);
});

test("/completion: several prompts (a batch), the multimodal object form, response_fields, post_sampling_probs", async () => {
  const one = async (prompt) => (await (await post(srv.url + "/completion", { prompt, n_predict: 4, temperature: 0 })).json());
  const a = await one("Hello"), b = await one([2, 1000, 2000]);
  const both = await (await post(srv.url + "/completion", { prompt: ["Hello", [2, 1000, 2000]], n_predict: 4,
    temperature: 0 })).json();
  assert.ok(Array.isArray(both) && both.length === 2);
  assert.deepEqual(both.map((x) => [x.index, x.content]), [[0, a.content], [1, b.content]]);
  const sr = await post(srv.url + "/completion", { prompt: ["Hello", [2, 1000, 2000]], n_predict: 4, temperature: 0,
    stream: true });
  const events = (await sr.text()).split("\n\n").filter((x) => x.startsWith("data: ")).map((x) => JSON.parse(x.slice(6)));
  const text = ["", ""];
  for (const e of events) if (!e.stop) text[e.index] += e.content;
  assert.deepEqual(text, [a.content, b.content]);
  assert.equal(events.filter((e) => e.stop).length, 2);
  const obj = await (await post(srv.url + "/completion", { prompt: { prompt_string: "Hello" }, n_predict: 4,
    temperature: 0 })).json();
  assert.equal(obj.content, a.content);
  const mm = await post(srv.url + "/completion", { prompt: { prompt_string: "x", multimodal_data: ["AAAA"] } });
  assert.equal(mm.status, 400);
  const f = await (await post(srv.url + "/completion", { prompt: "Hello", n_predict: 4, temperature: 0,
    response_fields: ["content", "generation_settings/n_predict", "prompt"] })).json();
  assert.deepEqual(Object.keys(f).sort(), ["content", "generation_settings/n_predict", "prompt"]);
  assert.equal(f["generation_settings/n_predict"], 4);
  assert.equal(f.prompt, "<bos>Hello");
  const p = await (await post(srv.url + "/completion", { prompt: "Hello", n_predict: 2, n_probs: 3,
    post_sampling_probs: true })).json();
  for (const tok of p.completion_probabilities) {
    assert.ok(tok.prob > 0 && tok.prob <= 1 && tok.top_probs.length === 3);
    assert.ok(!("logprob" in tok));
  }
  const eos = await (await post(srv.url + "/completion", { prompt: "Hi", n_predict: 2, ignore_eos: true })).json();
  assert.equal(eos.generation_settings.logit_bias.length, 2);
  for (const e of eos.generation_settings.logit_bias) assert.equal(e.bias, null); // -inf
  assert.equal(typeof eos.has_new_line, "boolean");
  const emb = await (await post(srv.url + "/v1/embeddings", { input: [[12, 34, 56], [12, "string", 34, 56]] })).json();
  assert.equal(emb.data.length, 2);
  const mixed = await (await post(srv.url + "/v1/embeddings", { input: [12, 34, "string", 56, 78] })).json();
  assert.equal(mixed.data.length, 1);
});

test("return_progress: the prompt's progress in the stream, batch by batch, then the reply", async () => {
  const s2 = await startServer(["-np", "1", "-c", "1024", "-t", "1", "-b", "16"]);
  try {
    const req = { messages: [{ role: "user", content: "This is a test. ".repeat(12) }], max_tokens: 3, stream: true,
      return_progress: true };
    for (const reuse of [false, true]) {
      const sr = await post(s2.url + "/v1/chat/completions", req);
      const events = (await sr.text()).split("\n\n").filter((x) => x.startsWith("data: {"))
        .map((x) => JSON.parse(x.slice(6)));
      const prog = events.filter((e) => e.prompt_progress).map((e) => e.prompt_progress);
      assert.ok(prog.length >= (reuse ? 1 : 3), JSON.stringify(prog));
      assert.equal(prog[0].cache, prog[0].processed);
      if (reuse) assert.ok(prog[0].cache > 0);
      for (let i = 1; i < prog.length; i++) {
        assert.equal(prog[i].total, prog[0].total);
        assert.ok(prog[i].processed > prog[i - 1].processed);
      }
      assert.equal(prog.at(-1).processed, prog.at(-1).total);
      const firstText = events.findIndex((e) => e.choices?.[0]?.delta?.content);
      assert.ok(firstText > events.findLastIndex((e) => e.prompt_progress), "progress comes before the reply");
    }
    const c = await post(s2.url + "/completion", { prompt: "word ".repeat(40), n_predict: 2, stream: true,
      return_progress: true });
    const ev = (await c.text()).split("\n\n").filter((x) => x.startsWith("data: ")).map((x) => JSON.parse(x.slice(6)));
    assert.ok(ev.filter((e) => e.prompt_progress).length >= 3);
  } finally {
    await stopServer(s2);
  }
});

test("--pooling none: /embeddings gives each token's vector (their mean, normalised, is the pooled one)", async () => {
  const s2 = await startServer(["-np", "2", "-c", "1024", "-t", "1", "--pooling", "none"]);
  try {
    const r = await (await post(s2.url + "/embeddings", { input: ["hello hello hello", "bye"] })).json();
    const ids = (await (await post(s2.url + "/tokenize", { content: "hello hello hello", add_special: true })).json()).tokens;
    assert.equal(r.length, 2);
    assert.equal(r[0].embedding.length, ids.length);
    const norm = (v) => Math.hypot(...v);
    assert.ok(r[0].embedding.every((v) => v.length === 64 && Math.abs(norm(v) - 1) > 1e-3)); // not normalised
    const mean = r[0].embedding[0].map((_, k) => r[0].embedding.reduce((a, v) => a + v[k], 0) / r[0].embedding.length);
    const pooled = (await (await post(srv.url + "/v1/embeddings", { input: "hello hello hello" })).json()).data[0].embedding;
    const n = norm(mean);
    for (let k = 0; k < 64; k++) assert.ok(Math.abs(mean[k] / n - pooled[k]) < 1e-4, `dimension ${k}`);
    for (const path of ["/v1/embeddings", "/api/embed"]) {
      const x = await post(s2.url + path, { input: "x" });
      assert.equal(x.status, 400, path);
    }
  } finally {
    await stopServer(s2);
  }
});

test("Vertex AI's prediction protocol (AIP_MODE=PREDICTION): /predict runs each instance as its route", async () => {
  process.env.AIP_MODE = "PREDICTION";
  process.env.AIP_HEALTH_ROUTE = "/vertex-health";
  let s2;
  try {
    s2 = await startServer(["-np", "2", "-c", "1024", "-t", "1", "--temp", "0"]);
  } finally {
    delete process.env.AIP_MODE;
    delete process.env.AIP_HEALTH_ROUTE;
  }
  try {
    const one = await (await post(s2.url + "/v1/chat/completions", { messages: ask, max_tokens: 4 })).json();
    const r = await post(s2.url + "/predict", { instances: [
      { "@requestFormat": "chatCompletions", messages: ask, max_tokens: 4, stream: true },
      { "@requestFormat": "completion", prompt: "Hi", n_predict: 2 },
      { "@requestFormat": "embeddings", input: "x" },
      { "@requestFormat": "nothing" },
      { "@requestFormat": "chatCompletions", messages: "x" },
    ] });
    assert.equal(r.status, 200);
    const p = (await r.json()).predictions;
    assert.equal(p.length, 5);
    assert.equal(p[0].choices[0].message.content, one.choices[0].message.content);
    assert.equal(p[1].tokens_predicted, 2);
    assert.equal(p[2].data[0].embedding.length, 64); // "embeddings": the first route of that name, /v1/embeddings
    assert.ok(p[3].error.message && p[4].error.message);
    assert.equal((await fetch(s2.url + "/vertex-health")).status, 200);
    assert.equal((await post(s2.url + "/predict", { instances: 3 })).status, 400);
    assert.equal((await fetch(srv.url + "/predict", { method: "POST", body: "{}" })).status, 404); // not in AIP_MODE
  } finally {
    await stopServer(s2);
  }
});

test("--sleep-idle-seconds: the context is freed when idle and made again for the next request", async () => {
  const s2 = await startServer(["-np", "1", "-c", "1024", "-t", "1", "--sleep-idle-seconds", "1", "--temp", "0"]);
  try {
    const q = { prompt: "The sky is", n_predict: 3 };
    const a = await (await post(s2.url + "/completion", q)).json();
    assert.equal((await (await fetch(s2.url + "/props")).json()).is_sleeping, false);
    await new Promise((res) => setTimeout(res, 1600));
    assert.equal((await (await fetch(s2.url + "/props")).json()).is_sleeping, true);
    assert.equal((await (await fetch(s2.url + "/slots")).json())[0].n_past, 0);
    assert.equal((await fetch(s2.url + "/health")).status, 200);
    const b = await (await post(s2.url + "/completion", q)).json();
    assert.equal(b.content, a.content); // the same reply from a new context
    assert.equal(b.tokens_cached, 0); // its prompt cache went with the old one
    assert.equal((await (await fetch(s2.url + "/props")).json()).is_sleeping, false);
    assert.match(s2.log(), /asleep after 1 s idle/);
    await new Promise((res) => setTimeout(res, 1600)); // and stop while asleep
  } finally {
    assert.equal(await stopServer(s2), 0);
  }
});

test("--kv-unified: the slots share one pool (each may fill it); a full pool ends the longest request (503)", async () => {
  // llama.cpp's test_completion_unified: 4 slots, a pool of 256, the prompt "A" (2 tokens with <bos>)
  const s2 = await startServer(["-np", "4", "--kv-unified", "-c", "256", "-t", "1", "--temp", "0"]);
  const run = (ns) => Promise.all(ns.map((n) => post(s2.url + "/completion", { prompt: "A", n_predict: n, ignore_eos: true })
    .then(async (r) => ({ status: r.status, body: await r.json() }))));
  try {
    assert.match(s2.log(), /4 slots of 256 tokens \(one pool they share\)/);
    const slots = await (await fetch(s2.url + "/slots")).json();
    assert.deepEqual(slots.map((x) => x.n_ctx), [256, 256, 256, 256]);
    // one request may take (almost) the whole pool: 2 + 250 positions, alone
    const big = (await run([250]))[0];
    assert.equal(big.status, 200);
    assert.equal(big.body.timings.predicted_n, 250);
    // 80 + 40 + 80 + 80: once the 40 is done (its cache purged), three of 82 fit in 256
    for (const r of await run([80, 40, 80, 80])) {
      assert.equal(r.status, 200);
      assert.equal(r.body.timings.predicted_n, r.body.generation_settings.n_predict);
    }
    // four of 72 do not fit: one ends with a 503 that names the pool, the others finish in full
    const four = await run([70, 70, 70, 70]);
    const failed = four.filter((r) => r.status !== 200);
    assert.ok(failed.length >= 1 && failed.length < 4, JSON.stringify(four.map((r) => r.status)));
    for (const r of failed) {
      assert.equal(r.status, 503);
      assert.equal(r.body.error.code, "kv_pool_full");
      assert.match(r.body.error.message, /KV pool of 256 positions/);
    }
    for (const r of four.filter((r) => r.status === 200)) assert.equal(r.body.timings.predicted_n, 70);
    assert.match(s2.log(), /cached prompt \(\d+ tokens\) leaves the KV pool/);
  } finally {
    assert.equal(await stopServer(s2), 0);
  }
  // without --parallel the defaults are llama-server's: 4 slots sharing -c
  const s3 = await startServer(["-c", "512", "-t", "1"]);
  try {
    assert.match(s3.log(), /4 slots of 512 tokens \(one pool they share\)/);
  } finally {
    assert.equal(await stopServer(s3), 0);
  }
  const s4 = await startServer(["-c", "512", "-t", "1", "-np", "2"]);
  try {
    assert.match(s4.log(), /2 slots of 256 tokens, queue/);
  } finally {
    assert.equal(await stopServer(s4), 0);
  }
});

test("--cache-ram: a slot's cache moved out (a unified pool's idle slot, a slot taken) comes back for its prompt", async () => {
  // llama.cpp's test_kv_keep_only_active: a long prompt on slot 0, another on slot 1, the long one again
  const LONG = "Once upon a time in a land far away, there lived a brave knight who traveled across mountains " +
    "and rivers to find the legendary golden sword hidden deep within the enchanted forest of whispers.";
  const q = (extra) => post(s2.url + "/completion", { n_predict: 4, cache_prompt: true, ...extra }).then((r) => r.json());
  let s2 = await startServer(["-np", "2", "--kv-unified", "-c", "1024", "-t", "1", "--temp", "0", "--cache-ram", "100"]);
  try {
    const first = await q({ prompt: LONG, id_slot: 0 });
    assert.equal(first.timings.cache_n, 0);
    await q({ prompt: "The quick brown fox", id_slot: 1 });
    // the idle slot 0 went to RAM and left the pool
    assert.match(s2.log(), /slot 0: \d+ tokens saved to the RAM prompt cache/);
    assert.equal((await (await fetch(s2.url + "/slots")).json())[0].n_past, 0);
    const again = await q({ prompt: LONG });
    assert.match(s2.log(), /tokens of the prompt restored from the RAM prompt cache/);
    assert.ok(again.timings.cache_n > 0 && again.timings.prompt_n < first.timings.prompt_n, JSON.stringify(again.timings));
    assert.equal(again.content, first.content); // the same bits as evaluated
    // a follow-up on the same conversation reuses its slot, nothing to restore
    const before = (s2.log().match(/restored from the RAM/g) ?? []).length;
    const more = await q({ prompt: LONG + " The knight finally reached the castle gates." });
    assert.ok(more.timings.cache_n >= again.timings.cache_n);
    assert.equal((s2.log().match(/restored from the RAM/g) ?? []).length, before);
  } finally {
    assert.equal(await stopServer(s2), 0);
  }
  // --no-cache-idle-slots: the idle slot keeps its cache; without --kv-unified: a slot taken by
  // another prompt saves what it held, and a request for it gets it back in any slot
  s2 = await startServer(["-np", "1", "-c", "1024", "-t", "1", "--temp", "0"]);
  try {
    const first = await q({ prompt: LONG });
    await q({ prompt: "The quick brown fox" });
    const again = await q({ prompt: LONG });
    assert.equal(again.content, first.content);
    assert.equal(again.timings.prompt_n, 1, JSON.stringify(again.timings));
  } finally {
    assert.equal(await stopServer(s2), 0);
  }
  s2 = await startServer(["-np", "2", "--kv-unified", "-c", "1024", "-t", "1", "--temp", "0", "--no-cache-idle-slots"]);
  try {
    await q({ prompt: LONG, id_slot: 0 });
    await q({ prompt: "The quick brown fox", id_slot: 1 });
    assert.ok((await (await fetch(s2.url + "/slots")).json())[0].n_past > 0);
    assert.doesNotMatch(s2.log(), /saved to the RAM prompt cache/);
  } finally {
    assert.equal(await stopServer(s2), 0);
  }
  // --cache-ram 0: none
  s2 = await startServer(["-np", "1", "-c", "1024", "-t", "1", "--temp", "0", "--cache-ram", "0"]);
  try {
    const first = await q({ prompt: LONG });
    await q({ prompt: "The quick brown fox" });
    const again = await q({ prompt: LONG });
    assert.equal(again.timings.prompt_n, first.timings.prompt_n - 1); // <bos> only, shared with the fox
    assert.doesNotMatch(s2.log(), /RAM prompt cache/);
  } finally {
    assert.equal(await stopServer(s2), 0);
  }
});

test("errors as llama-server gives them: a prompt too long, two assistant messages at the end; /input_tokens", async () => {
  const r = await post(srv.url + "/v1/chat/completions", { messages: [{ role: "user", content: "word ".repeat(3000) }] });
  assert.equal(r.status, 400);
  const e = (await r.json()).error;
  assert.equal(e.type, "exceed_context_size_error");
  assert.equal(e.code, "context_length_exceeded");
  assert.equal(e.n_ctx, 1024);
  assert.ok(e.n_prompt_tokens > 1024);
  const two = await post(srv.url + "/v1/chat/completions", { messages: [{ role: "user", content: "a" },
    { role: "assistant", content: "b" }, { role: "assistant", content: "c" }] });
  assert.equal(two.status, 400);
  const n = await (await post(srv.url + "/chat/completions/input_tokens", { messages: ask })).json();
  const ids = await (await post(srv.url + "/apply-template", { messages: ask })).json();
  const count = (await (await post(srv.url + "/tokenize", { content: ids.prompt })).json()).tokens.length;
  assert.equal(n.input_tokens, count);
});

test("a client that gives up on a reply it did not stream frees its slot", async () => {
  const s2 = await startServer(["-np", "1", "-c", "4096", "-t", "1"]);
  try {
    const ac = new AbortController();
    const req = fetch(s2.url + "/completion", { method: "POST", signal: ac.signal,
      body: JSON.stringify({ prompt: "Go on", n_predict: 100000, ignore_eos: true }) }).catch(() => null);
    const busy = async () => (await (await fetch(s2.url + "/slots")).json())[0].is_processing;
    for (let i = 0; i < 50 && !(await busy()); i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(await busy(), true);
    ac.abort(); // the connection closes; the server sees it within 0.1 s
    await req;
    let free = false;
    for (let i = 0; i < 50 && !free; i++) {
      await new Promise((res) => setTimeout(res, 20));
      free = !(await busy());
    }
    assert.ok(free, "the slot is still busy 1 s after its client left");
    const next = await (await post(s2.url + "/completion", { prompt: "x", n_predict: 2 })).json();
    assert.equal(next.tokens_predicted, 2);
  } finally {
    await stopServer(s2);
  }
});

test("model names: another name is served by the loaded model (the reply names it); --strict-model-names: 404", async () => {
  const r = await (await post(srv.url + "/v1/chat/completions", { model: "gpt-4o", messages: ask, ...greedy })).json();
  assert.equal(r.model, NAME);
  assert.equal(r.choices[0].message.content, await chatText(srv.url + "/v1/chat/completions", { messages: ask, ...greedy }));
  const s2 = await startServer(["-np", "1", "-c", "512", "-t", "1", "--strict-model-names"]);
  try {
    const x = await post(s2.url + "/v1/chat/completions", { model: "gpt-4o", messages: ask, ...greedy });
    assert.equal(x.status, 404);
    assert.match((await x.json()).error.message, /gpt-4o/);
    assert.equal((await post(s2.url + "/v1/chat/completions", { model: NAME, messages: ask, ...greedy })).status, 200);
  } finally {
    await stopServer(s2);
  }
});

test("Ollama: name:latest is the name; errors in Ollama's shape (ollama-js shows them); /api/embeddings; /api/pull", async () => {
  const ollama = new Ollama({ host: srv.url });
  const opts = { temperature: 0, num_predict: 8 };
  const a = await ollama.chat({ model: NAME, messages: ask, options: opts });
  const b = await ollama.chat({ model: NAME + ":latest", messages: ask, options: opts });
  assert.equal(b.message.content, a.message.content);
  await assert.rejects(ollama.chat({ model: "llama3", messages: ask }), (e) => /llama3/.test(e.message) && e.status_code === 404);
  for (const [path, body, status] of [["/api/nothing", {}, 404], ["/api/chat", "not json", 400],
    ["/api/show", { model: "llama3" }, 404]]) {
    const r = await fetch(srv.url + path, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) });
    assert.equal(r.status, status, path);
    const j = await r.json();
    assert.equal(typeof j.error, "string", `${path}: ${JSON.stringify(j)}`);
  }
  const legacy = await ollama.embeddings({ model: NAME, prompt: "hello world" });
  const modern = await ollama.embed({ model: NAME, input: "hello world" });
  assert.equal(legacy.embedding.length, 64);
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(legacy.embedding[i] - modern.embeddings[0][i]) < 1e-6);
  const pulled = await ollama.pull({ model: NAME + ":latest" });
  assert.equal(pulled.status, "success");
  const streamed = [];
  for await (const p of await ollama.pull({ model: NAME, stream: true })) streamed.push(p.status);
  assert.deepEqual(streamed, ["success"]);
  await assert.rejects(ollama.pull({ model: "llama3.2" }), (e) => /does not download/.test(e.message));
});

test("CORS: preflight allows pages on this machine (the default), not others (their requests: 403); --cors-origins", async () => {
  const pre = (url, origin) => fetch(url + "/v1/chat/completions", { method: "OPTIONS", headers: { Origin: origin,
    "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type" } });
  for (const origin of ["http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:8000"]) {
    const r = await pre(srv.url, origin);
    assert.equal(r.status, 200, origin);
    assert.equal(r.headers.get("access-control-allow-origin"), origin);
    assert.equal(r.headers.get("access-control-allow-credentials"), "true");
    assert.match(r.headers.get("access-control-allow-methods"), /POST/);
    assert.match(r.headers.get("access-control-allow-headers"), /authorization/);
    const g = await fetch(srv.url + "/v1/models", { headers: { Origin: origin } });
    assert.equal(g.headers.get("access-control-allow-origin"), origin);
  }
  for (const origin of ["https://example.com", "http://localhost.example.com"]) {
    const p = await pre(srv.url, origin);
    assert.equal(p.status, 200, origin);
    assert.equal(p.headers.get("access-control-allow-origin"), null, origin); // the browser stops there
    const r = await post(srv.url + "/v1/chat/completions", { messages: ask, ...greedy }, { Origin: origin });
    assert.equal(r.status, 403);
    assert.match((await r.json()).error.message, /--cors-origins/);
  }
  // no Origin (a program, not a page): no CORS rules
  assert.equal((await post(srv.url + "/v1/chat/completions", { messages: ask, ...greedy })).status, 200);
  const any = await startServer(["-np", "1", "-c", "512", "-t", "1", "--cors-origins", "*"]);
  const list = await startServer(["-np", "1", "-c", "512", "-t", "1", "--cors-origins", "https://app.example, localhost"]);
  try {
    const allowed = async (url, origin) => (await pre(url, origin)).headers.get("access-control-allow-origin") === origin;
    assert.ok(await allowed(any.url, "https://example.com"));
    assert.ok(await allowed(list.url, "https://app.example"));
    assert.ok(await allowed(list.url, "http://localhost:1"));
    assert.ok(!(await allowed(list.url, "https://other.example")));
    assert.equal((await post(list.url + "/v1/models", {}, { Origin: "https://other.example" })).status, 403);
  } finally {
    await stopServer(any);
    await stopServer(list);
  }
});

test("conversations as clients send them: same-role runs merged, a later system message read as user text", async () => {
  const tpl = async (messages) => {
    const r = await post(srv.url + "/apply-template", { messages });
    assert.equal(r.status, 200);
    return (await r.json()).prompt;
  };
  assert.equal(await tpl([{ role: "user", content: "Hi" }]),
    "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
  const merged = [{ role: "system", content: "Be brief." }, { role: "system", content: "Be kind." },
    { role: "user", content: "a" }, { role: "user", content: [{ type: "text", text: "b" }] }];
  const joined = [{ role: "system", content: "Be brief.\n\nBe kind." }, { role: "user", content: "a\n\nb" }];
  assert.equal(await tpl(merged), await tpl(joined));
  const late = [{ role: "user", content: "a" }, { role: "assistant", content: "b" }, { role: "system", content: "Now French." },
    { role: "user", content: "c" }];
  assert.equal(await tpl(late), await tpl([late[0], late[1], { role: "user", content: "Now French.\n\nc" }]));
  assert.equal(await chatText(srv.url + "/v1/chat/completions", { messages: merged, ...greedy }),
    await chatText(srv.url + "/v1/chat/completions", { messages: joined, ...greedy }));
  // a last assistant message is continued (a prefill): the prompt ends with its text, no end of turn
  const pre = await tpl([{ role: "user", content: "Hi" }, { role: "assistant", content: "Well," }]);
  assert.equal(pre, "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nWell,");
  const parts = await tpl([{ role: "user", content: "Hi" }, { role: "assistant", content: [{ type: "text", text: "Wh" },
    { type: "text", text: "ill" }] }]);
  assert.ok(parts.endsWith("<start_of_turn>model\nWh\n\nill"), parts);
  const both = await post(srv.url + "/v1/chat/completions", { messages: ask, add_generation_prompt: true,
    continue_final_message: true });
  assert.equal(both.status, 400);
  // the reply continues it: the same tokens as a completion of that prompt
  const cont = await (await post(srv.url + "/v1/chat/completions", { messages: [{ role: "user", content: "Hi" },
    { role: "assistant", content: "Well," }], ...greedy })).json();
  const raw = await (await post(srv.url + "/completion", { prompt: pre.slice("<bos>".length), n_predict: 8,
    temperature: 0 })).json(); // /completion puts <bos> first itself
  assert.equal(cont.choices[0].message.content, raw.content);
  assert.ok(cont.system_fingerprint.startsWith("b"));
  const v = await (await post(srv.url + "/v1/chat/completions", { messages: joined, ...greedy, verbose: true })).json();
  assert.equal(v.__verbose.prompt, await tpl(joined)); // llama-server's verbose: the prompt as the model saw it
});

test("/props, /tokenize with_pieces, /lora-adapters, metrics under llama-server's names, no log line per /health", async () => {
  const p = await (await fetch(srv.url + "/props")).json();
  assert.equal(p.total_slots, 4);
  assert.equal(p.default_generation_settings.n_ctx, 1024);
  assert.equal(p.modalities.vision, false);
  assert.equal(p.bos_token, "<bos>");
  const text = "Héllo wörld 🙂";
  const t = await (await post(srv.url + "/tokenize", { content: text, with_pieces: true })).json();
  const bytes = t.tokens.flatMap((x) => [...(typeof x.piece === "string" ? Buffer.from(x.piece) : Buffer.from(x.piece))]);
  assert.equal(Buffer.from(bytes).toString(), text);
  const plain = await (await post(srv.url + "/tokenize", { content: text })).json();
  assert.deepEqual(t.tokens.map((x) => x.id), plain.tokens);
  assert.deepEqual(await (await post(srv.url + "/lora-adapters", [])).json(), []);
  assert.equal((await post(srv.url + "/lora-adapters", [{ id: 0, scale: 1 }])).status, 400);
  assert.equal((await post(srv.url + "/lora-adapters", { id: 0 })).status, 400);
  const m = await (await fetch(srv.url + "/metrics")).text();
  assert.match(m, /^llamacpp:tokens_predicted_total \d+$/m);
  assert.match(m, /^llamacpp:requests_processing \d+$/m);
  for (let i = 0; i < 3; i++) await fetch(srv.url + "/health");
  await fetch(srv.url + "/api/version");
  await new Promise((res) => setTimeout(res, 300)); // the log line is written as the connection ends
  assert.ok(!/GET \/health/.test(srv.log()), "a /health request was logged");
  assert.ok(/GET \/api\/version 200/.test(srv.log()));
});

test("bad input: json_object with a schema that is not an object, U+0000 in a string, bad defaults", async () => {
  const r = await post(srv.url + "/v1/chat/completions", { messages: ask, response_format: { type: "json_object", schema: "x" } });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error.message, /response_format.schema/);
  const nul = await fetch(srv.url + "/v1/chat/completions", { method: "POST",
    body: '{"messages":[{"role":"user","content":"a\\u0000b"}]}' });
  assert.equal(nul.status, 400);
  assert.match((await nul.json()).error.message, /U\+0000/);
  const fmt = await post(srv.url + "/v1/chat/completions", { messages: ask, response_format: { type: "json_schema",
    json_schema: { name: "n", schema: { type: "object", properties: { "a\u0000": { type: "string" } } } } } });
  assert.equal(fmt.status, 400);
});

test("server-wide defaults (--temp 0 -n 5 --seed): requests without them follow them; requests override them", async () => {
  const s2 = await startServer(["-np", "1", "-c", "512", "-t", "1", "--temp", "0", "-n", "5"]);
  try {
    const a = await (await post(s2.url + "/v1/chat/completions", { messages: ask })).json();
    const b = await (await post(s2.url + "/v1/chat/completions", { messages: ask, temperature: 0, max_tokens: 5 })).json();
    assert.equal(a.usage.completion_tokens, 5);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    const c = await (await post(s2.url + "/v1/chat/completions", { messages: ask, max_tokens: 2 })).json();
    assert.equal(c.usage.completion_tokens, 2);
    const o = await (await post(s2.url + "/api/generate", { prompt: "Name a colour.", stream: false })).json();
    assert.equal(o.eval_count, 5);
  } finally {
    await stopServer(s2);
  }
});

test("--host ::1 (IPv6 loopback) serves", async (t) => {
  const net = await import("node:net");
  const ok = await new Promise((res) => {
    const s = net.createServer().once("error", () => res(false)).listen(0, "::1", () => s.close(() => res(true)));
  });
  if (!ok) return t.skip("no IPv6 loopback here");
  const port = 20000 + Math.floor(Math.random() * 20000);
  const { spawn } = await import("node:child_process");
  const proc = spawn(process.env.GEMMA8 ?? "build/gemma8", ["serve", "-m", MODEL, "--host", "::1", "--port", String(port),
    "-np", "1", "-c", "512", "-t", "1"], { stdio: "ignore" });
  try {
    let r;
    for (let i = 0; i < 200 && !r; i++) {
      try {
        r = await fetch(`http://[::1]:${port}/health`);
      } catch {
        await new Promise((res) => setTimeout(res, 50));
      }
    }
    assert.ok(r && r.ok);
  } finally {
    proc.kill("SIGTERM");
  }
});

// ---- structured output from the clients people use, with zod schemas ---------------------------

const shape = (z, nullableNick) => z.object({
  id: z.number().int(),
  age: z.number().int().min(0).max(150),
  score: z.number().min(0).max(1),
  delta: z.number().gt(-5).lt(5),
  kind: z.enum(["cat", "dog", "bird"]),
  nick: nullableNick ? z.string().max(12).nullable() : z.string().max(12).optional(), // OpenAI's strict rules
  grid: z.array(z.array(z.number().int().min(-3).max(3)).max(3)).max(2),
});
const Person = shape(z);
const PersonV3 = shape(z3, true);
const JSON_SCHEMA = z.toJSONSchema(Person);
const ajv = new Ajv2020({ strict: false });
const valid = ajv.compile(JSON_SCHEMA);
const check = (obj, who) => {
  assert.ok(valid(obj), `${who}: ${JSON.stringify(obj)} ${ajv.errorsText(valid.errors)}`);
  // (not zod's own parse: its string lengths count UTF-16 units, JSON Schema's count characters)
  assert.ok(JSON_SCHEMA.properties.id.maximum === Number.MAX_SAFE_INTEGER); // the schema that was refused before
};

test("the AI SDK: generateObject and streamText with an object output (zod .int(), .min(), .max())", { skip: sanitized },
  async () => {
  const provider = createOpenAICompatible({ name: "gemma8", baseURL: srv.url + "/v1", supportsStructuredOutputs: true });
  for (let seed = 1; seed <= 3; seed++) {
    const { object } = await generateObject({ model: provider(NAME), schema: Person, prompt: "A pet as JSON.",
      temperature: 1, seed, maxOutputTokens: 300 });
    check(object, "generateObject");
  }
  const r = streamText({ model: provider(NAME), prompt: "A pet as JSON.", temperature: 1, seed: 7, maxOutputTokens: 300,
    experimental_output: Output.object({ schema: Person }) });
  let text = "";
  for await (const part of r.textStream) text += part;
  check(JSON.parse(text), "streamText");
});

test("LangChain JS: withStructuredOutput (json_schema and jsonMode)", { skip: sanitized }, async () => {
  const llm = new ChatOpenAI({ model: NAME, apiKey: "none", configuration: { baseURL: srv.url + "/v1" }, temperature: 1,
    maxTokens: 300 });
  for (const method of ["jsonSchema", "jsonMode"]) {
    const s = llm.withStructuredOutput(PersonV3, { method, name: "pet" });
    if (method === "jsonMode") {
      // json mode asks only for an object: check it is one (the schema is the prompt's business)
      const raw = await llm.withStructuredOutput(z3.object({}).passthrough(), { method }).invoke("A pet as JSON.");
      assert.equal(typeof raw, "object");
      continue;
    }
    for (let i = 0; i < 2; i++) {
      const o = await s.invoke("A pet as JSON.");
      if (o.nick === null) delete o.nick;
      check(o, "withStructuredOutput");
    }
  }
});

test("ollama-js: format with a zod schema", { skip: sanitized }, async () => {
  const ollama = new Ollama({ host: srv.url });
  const format = JSON_SCHEMA;
  for (let seed = 1; seed <= 3; seed++) {
    const r = await ollama.chat({ model: NAME, messages: [{ role: "user", content: "A pet as JSON." }], format,
      options: { seed, temperature: 1, num_predict: 300 } });
    check(JSON.parse(r.message.content), "ollama format");
  }
});
