// anthropic.test.mjs - Anthropic's Messages API on `gemma8 serve`, driven by the official
// @anthropic-ai/sdk: text (equal to the OpenAI API's greedy reply for the same conversation),
// streamed events assembled by the SDK, tools (every tool_use input validated with ajv), a
// conversation with tool results, count_tokens, errors in Anthropic's shape, and the fields agents
// send (cache_control, metadata, thinking). Run by `make test` (node --test), on loopback.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { cliGreedy, makeDemoModel, startServer, stopServer } from "./serverlib.mjs";

const require = createRequire(resolve(process.env.NPM_DIR ?? "third_party/npm") + "/");
const Anthropic = require("@anthropic-ai/sdk").default ?? require("@anthropic-ai/sdk");
const Ajv2020 = require("ajv/dist/2020").default;

const sanitized = !!process.env.GEMMA8_SANITIZED;
const SEEDS = sanitized ? 3 : 10;
const dir = mkdtempSync(join(tmpdir(), "gemma8-anthropic-"));
const MODEL = join(dir, "demo.gguf");
let srv, client;

const weather = {
  type: "object",
  properties: { city: { type: "string", minLength: 1, maxLength: 20 }, days: { type: "integer", minimum: 1, maximum: 7 } },
  required: ["city", "days"],
  additionalProperties: false,
};
const TOOLS = [{ name: "get_weather", description: "The weather in a city", input_schema: weather }];
const check = new Ajv2020({ strict: false }).compile(weather);
const post = (path, body, headers = {}) =>
  fetch(srv.url + path, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });

before(async () => {
  makeDemoModel(MODEL);
  srv = await startServer(MODEL, ["-np", "2", "-c", "8192", "-t", "1"]);
  client = new Anthropic({ baseURL: srv.url, apiKey: "none", maxRetries: 0 });
});

after(async () => {
  try {
    if (srv) await stopServer(srv);
  } finally {
    rmSync(dir, { recursive: true, force: true }); // the models, logs and files of this run
  }
});

test("messages.create: greedy text equals gemma8 run's and the OpenAI API's for the same conversation; streamed the same", async () => {
  const system = "Answer briefly.";
  const messages = [{ role: "user", content: "Name three colours." }];
  const r = await client.messages.create({ model: "claude-sonnet-4-5", max_tokens: 24, temperature: 0, top_k: 1, system, messages });
  assert.equal(r.type, "message");
  assert.equal(r.role, "assistant");
  assert.match(r.id, /^msg_/);
  assert.equal(r.stop_reason, "max_tokens");
  assert.equal(r.content.length, 1);
  assert.equal(r.content[0].type, "text");
  assert.equal(r.usage.output_tokens, 24);
  const oai = await (await post("/v1/chat/completions", {
    messages: [{ role: "system", content: system }, ...messages], max_tokens: 24, temperature: 0,
  })).json();
  assert.equal(r.content[0].text, oai.choices[0].message.content);
  assert.equal(r.content[0].text, cliGreedy(MODEL, system, messages[0].content, 24));
  // the SDK's stream helper assembles the events into the same message
  const stream = client.messages.stream({ model: "m", max_tokens: 24, temperature: 0, system: [{ type: "text", text: system }], messages });
  const kinds = new Set();
  stream.on("streamEvent", (e) => {
    kinds.add(e.type);
    if (e.type === "message_start") assert.ok(e.message.usage.input_tokens > 0); // the prompt's, known at once
  });
  const final = await stream.finalMessage();
  assert.equal(final.content[0].text, r.content[0].text);
  assert.equal(final.stop_reason, "max_tokens");
  for (const k of ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"])
    assert.ok(kinds.has(k), k);
  // a stop sequence ends it with its name
  const word = r.content[0].text.slice(3, 6);
  const stopped = await client.messages.create({ model: "m", max_tokens: 24, temperature: 0, system, messages, stop_sequences: [word] });
  assert.equal(stopped.stop_reason, "stop_sequence");
  assert.equal(stopped.stop_sequence, word);
  assert.equal(stopped.content[0].text, r.content[0].text.slice(0, r.content[0].text.indexOf(word)));
});

test("tools: tool_choice any over seeds: tool_use blocks whose input validates; streamed the same", async () => {
  const messages = [{ role: "user", content: "Weather in Paris for two days?" }];
  for (let seed = 0; seed < SEEDS; seed++) {
    // Anthropic's API has no seed: top_k 1 makes the reply a function of the request
    const req = { model: "m", max_tokens: 200, top_k: 1, tools: TOOLS, tool_choice: { type: "any" }, messages };
    messages[0].content = `Weather in Paris for ${seed + 1} days?`;
    const r = await client.messages.create(req);
    assert.equal(r.stop_reason, "tool_use");
    const uses = r.content.filter((b) => b.type === "tool_use");
    assert.ok(uses.length >= 1);
    for (const u of uses) {
      assert.equal(u.name, "get_weather");
      assert.match(u.id, /^toolu_/);
      assert.ok(check(u.input), JSON.stringify(u.input));
    }
    const final = await client.messages.stream(req).finalMessage();
    assert.deepEqual(final.content.map((b) => [b.type, b.name, b.input]), r.content.map((b) => [b.type, b.name, b.input]));
    assert.equal(final.stop_reason, "tool_use");
  }
  // a forced tool, one call only
  const one = await client.messages.create({
    model: "m", max_tokens: 200, top_k: 1, tools: TOOLS, messages,
    tool_choice: { type: "tool", name: "get_weather", disable_parallel_tool_use: true },
  });
  assert.equal(one.content.filter((b) => b.type === "tool_use").length, 1);
});

test("a conversation with tool_use and tool_result blocks; count_tokens counts its prompt", async () => {
  const messages = [
    { role: "user", content: [{ type: "text", text: "Weather in Oslo?" }] },
    { role: "assistant", content: [{ type: "text", text: "Checking." }, { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Oslo", days: 1 } }] },
    { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: [{ type: "text", text: "-3 C" }] }, { type: "text", text: "And tomorrow?" }] },
  ];
  const req = { model: "m", max_tokens: 8, temperature: 0, tools: TOOLS, tool_choice: { type: "none" }, messages };
  const r = await client.messages.create(req);
  assert.equal(r.content[0].type, "text");
  const count = await client.messages.countTokens({ model: "m", tools: TOOLS, messages });
  assert.equal(count.input_tokens, r.usage.input_tokens + r.usage.cache_read_input_tokens);
  // the prompt as the template writes it: the call after the text, the result before the question
  const tpl = await (await post("/apply-template", {
    messages: [
      { role: "user", content: "Weather in Oslo?" },
      { role: "assistant", content: "Checking.", tool_calls: [{ id: "toolu_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\",\"days\":1}" } }] },
      { role: "tool", tool_call_id: "toolu_1", content: "-3 C" }, { role: "user", content: "And tomorrow?" }],
  })).json();
  const ids = (await (await post("/tokenize", { content: tpl.prompt, parse_special: true })).json()).tokens;
  assert.ok(ids.length > 0);
});

test("what agents send is accepted: cache_control, metadata, thinking, server tools; errors in Anthropic's shape", async () => {
  // Claude Code's own request (tests/data/clients): 24 tools and its system prompt, 19K tokens (a long
  // prefill: not under a sanitizer, where fuzz-request's corpus runs the same parser)
  const fixture = JSON.parse(readFileSync(new URL("../data/clients/claude-code-messages.json", import.meta.url), "utf8"));
  const big = sanitized ? null : await startServer(MODEL, ["-np", "1", "-c", "24576", "-t", "1"]);
  if (big) try {
    const headers = { "Content-Type": "application/json", "x-api-key": "none", "anthropic-version": "2023-06-01" };
    const at = (b) => fetch(big.url + "/v1/messages?beta=true", { method: "POST", headers, body: JSON.stringify(b) });
    const r = await at({ ...fixture, stream: false, max_tokens: 16 });
    const body = await r.json();
    assert.equal(r.status, 200, JSON.stringify(body));
    assert.equal(body.type, "message");
    for (const f of ["metadata", "thinking", "context_management", "output_config"])
      assert.match(big.log(), new RegExp(`'${f}' accepted and ignored`));
    const s = await at({ ...fixture, max_tokens: 16 }); // as it was sent: streamed
    assert.equal(s.status, 200);
    const text = await s.text();
    assert.match(text, /^event: message_start\n/);
    assert.match(text, /event: message_stop\n/);
  } finally {
    assert.equal(await stopServer(big), 0);
  }
  for (const [bad, why] of [
    [{ model: "m", messages: [{ role: "user", content: "x" }] }, /max_tokens/],
    [{ model: "m", max_tokens: 5 }, /messages/],
    [{ model: "m", max_tokens: 5, messages: [{ role: "bot", content: "x" }] }, /role/],
    [{ model: "m", max_tokens: 5, messages: [{ role: "user", content: [{ type: "image", source: {} }] }] }, /text only/],
    [{ model: "m", max_tokens: 5, temperature: 1.5, messages: [{ role: "user", content: "x" }] }, /temperature/],
  ]) {
    const e = await post("/v1/messages", bad);
    assert.equal(e.status, 400, JSON.stringify(bad));
    const j = await e.json();
    assert.equal(j.type, "error");
    assert.equal(j.error.type, "invalid_request_error");
    assert.match(j.error.message, why);
  }
  // the SDK turns them into its errors
  await assert.rejects(client.messages.create({ model: "m", max_tokens: 5, messages: [{ role: "bot", content: "x" }] }),
    (e) => e.status === 400);
  // no messages at all: an empty user turn, as llama-server answers it
  const empty = await client.messages.create({ model: "m", max_tokens: 3, messages: [] });
  assert.equal(empty.type, "message");
});
