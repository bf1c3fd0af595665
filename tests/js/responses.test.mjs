// responses.test.mjs - OpenAI's Responses API on `gemma8 serve`, driven by the official `openai`
// client: text (equal to the chat API's greedy reply), streamed events assembled by the client's
// helper, function calls (arguments validated with ajv) and their outputs sent back, text.format,
// the refusal of previous_response_id, and the request Codex CLI sent (captured on loopback).
// Run by `make test` (node --test), on loopback.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { cliGreedy, makeDemoModel, startServer, stopServer } from "./serverlib.mjs";

const require = createRequire(resolve(process.env.NPM_DIR ?? "third_party/npm") + "/");
const OpenAI = require("openai").default ?? require("openai");
const Ajv2020 = require("ajv/dist/2020").default;

const sanitized = !!process.env.GEMMA8_SANITIZED;
const dir = mkdtempSync(join(tmpdir(), "gemma8-responses-"));
const MODEL = join(dir, "demo.gguf");
let srv, openai;

const weather = {
  type: "object",
  properties: { city: { type: "string", minLength: 1, maxLength: 20 }, days: { type: "integer", minimum: 1, maximum: 7 } },
  required: ["city", "days"],
  additionalProperties: false,
};
const TOOLS = [{ type: "function", name: "get_weather", description: "The weather in a city", parameters: weather, strict: true }];
const check = new Ajv2020({ strict: false }).compile(weather);
const post = (url, body) => fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

before(async () => {
  makeDemoModel(MODEL);
  srv = await startServer(MODEL, ["-np", "2", "-c", "16384", "-t", "1"]);
  openai = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none", maxRetries: 0 });
});

after(async () => {
  try {
    if (srv) await stopServer(srv);
  } finally {
    rmSync(dir, { recursive: true, force: true }); // the models, logs and files of this run
  }
});

test("responses.create: greedy text equals gemma8 run's and the chat API's; streamed through the client's helper the same", async () => {
  const req = { model: "gpt-5", instructions: "Answer briefly.", input: "Name three colours.", max_output_tokens: 20, temperature: 0 };
  const r = await openai.responses.create(req);
  assert.equal(r.object, "response");
  assert.match(r.id, /^resp_/);
  assert.equal(r.status, "incomplete");
  assert.equal(r.incomplete_details.reason, "max_output_tokens");
  assert.equal(r.output[0].type, "message");
  const chat = await openai.chat.completions.create({
    model: "m", messages: [{ role: "system", content: req.instructions }, { role: "user", content: req.input }], max_tokens: 20, temperature: 0,
  });
  assert.equal(r.output_text, chat.choices[0].message.content);
  assert.equal(r.output_text, cliGreedy(MODEL, req.instructions, req.input, 20));
  assert.equal(r.usage.output_tokens, 20);
  // streamed: events in order of their sequence numbers; the text deltas make the same text
  const stream = await openai.responses.create({ ...req, stream: true });
  let text = "", seq = -1, last;
  for await (const e of stream) {
    assert.equal(e.sequence_number, seq + 1);
    seq = e.sequence_number;
    if (e.type === "response.output_text.delta") text += e.delta;
    last = e;
  }
  assert.equal(text, r.output_text);
  assert.equal(last.type, "response.incomplete");
  // a reply that ends by itself completes: the client's stream helper gives the final response
  const done = await openai.responses.stream({ ...req, max_output_tokens: 400, text: { format: { type: "json_object" } } }).finalResponse();
  assert.equal(done.status, "completed");
  assert.equal(typeof JSON.parse(done.output[0].content[0].text), "object");
});

test("function calls: required over seeds, arguments validate; outputs go back as function_call_output", async () => {
  const input = [{ role: "user", content: "Weather in Paris?" }];
  for (let i = 0; i < (sanitized ? 2 : 8); i++) {
    input[0].content = `Weather in Paris for ${i + 1} days?`;
    const req = { model: "m", input, tools: TOOLS, tool_choice: "required", max_output_tokens: 300, temperature: 0 };
    const r = await openai.responses.create(req);
    const calls = r.output.filter((o) => o.type === "function_call");
    assert.ok(calls.length >= 1);
    for (const c of calls) {
      assert.equal(c.name, "get_weather");
      assert.match(c.call_id, /^call_/);
      assert.ok(check(JSON.parse(c.arguments)), c.arguments);
    }
    const final = await openai.responses.stream(req).finalResponse();
    assert.deepEqual(final.output.map((o) => [o.type, o.name, o.arguments]), r.output.map((o) => [o.type, o.name, o.arguments]));
    // the calls and their outputs back in the input: a text reply (tool_choice none)
    const next = await openai.responses.create({
      model: "m", tools: TOOLS, tool_choice: "none", max_output_tokens: 8, temperature: 0,
      input: [...input, ...calls, ...calls.map((c) => ({ type: "function_call_output", call_id: c.call_id, output: "sunny" }))],
    });
    assert.equal(next.output[0].type, "message");
  }
  const one = await openai.responses.create({
    model: "m", input, tools: TOOLS, max_output_tokens: 300, parallel_tool_calls: false, tool_choice: { type: "function", name: "get_weather" },
  });
  assert.equal(one.output.filter((o) => o.type === "function_call").length, 1);
});

test("not stored: previous_response_id is a 400 that says so; bad input named", async () => {
  for (const [bad, why] of [
    [{ model: "m", input: "x", previous_response_id: "resp_1" }, /does not store/],
    [{ model: "m", input: [] }, /input/],
    [{ model: "m", input: [{ role: "user", content: [{ type: "input_image", image_url: "x" }] }] }, /text only/],
    [{ model: "m", input: [{ type: "computer_call", id: "1" }] }, /computer_call/],
    [{ model: "m", input: "x", text: { format: { type: "xml" } } }, /text.format/],
  ]) {
    const r = await post(srv.url + "/v1/responses", bad);
    assert.equal(r.status, 400, JSON.stringify(bad));
    assert.match((await r.json()).error.message, why);
  }
});

test("Codex CLI's own request (namespaced tools, web_search, reasoning, client_metadata) is answered", { skip: sanitized }, async () => {
  const fixture = JSON.parse(readFileSync(new URL("../data/clients/codex-responses.json", import.meta.url), "utf8"));
  const r = await post(srv.url + "/v1/responses", { ...fixture, max_output_tokens: 16 });
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.match(text, /^event: response.created\n/);
  assert.match(text, /event: response.incomplete\n|event: response.completed\n/);
  assert.match(srv.log(), /tool 4 \(type namespace, multi_agent_v1\) is not a function: left out/);
  assert.match(srv.log(), /'client_metadata' accepted and ignored/);
});

test("llama-server's extensions: return_progress (response.in_progress with prompt_progress), timings_per_token", async () => {
  const r = await post(srv.url + "/v1/responses", {
    model: "m", input: "This is a test ".repeat(20), max_output_tokens: 6, stream: true, return_progress: true, timings_per_token: true,
  });
  const events = (await r.text()).split("\n\n").filter((x) => x.includes("data: ")).map((x) => JSON.parse(x.slice(x.indexOf("data: ") + 6)));
  const progress = events.filter((e) => e.prompt_progress);
  assert.ok(progress.length >= 1);
  for (const p of progress) {
    assert.equal(p.type, "response.in_progress");
    assert.ok(p.prompt_progress.total > 0 && p.prompt_progress.processed >= p.prompt_progress.cache);
  }
  assert.ok(events.some((e) => e.type === "response.output_text.delta" && e.timings?.predicted_per_second !== undefined));
  const last = events.at(-1);
  assert.ok(last.timings && last.response.usage);
});
