// tools.test.mjs - tool calling through `gemma8 serve` with clients nobody here wrote: the official
// `openai` and `ollama` npm clients, the Vercel AI SDK's agent loop and LangChain JS's bindTools.
// The model has random weights: only the grammar makes a call valid, so every call is checked
// against its tool's schema with ajv. Run by `make test` (node --test), on loopback.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { makeDemoModel, startServer, stopServer } from "./serverlib.mjs";

const require = createRequire(resolve(process.env.NPM_DIR ?? "third_party/npm") + "/");
const OpenAI = require("openai").default ?? require("openai");
const { Ollama } = require("ollama");
const Ajv2020 = require("ajv/dist/2020").default;
const { generateText, tool, stepCountIs, jsonSchema } = require("ai");
const { createOpenAICompatible } = require("@ai-sdk/openai-compatible");
const { ChatOpenAI } = require("@langchain/openai");

const sanitized = !!process.env.GEMMA8_SANITIZED;
const SEEDS = sanitized ? 4 : 20;
const dir = mkdtempSync(join(tmpdir(), "gemma8-tools-"));
const MODEL = join(dir, "demo.gguf");
let srv, openai;

const weather = {
  type: "object",
  properties: {
    city: { type: "string", minLength: 1, maxLength: 20 },
    unit: { enum: ["celsius", "fahrenheit"] },
    days: { type: "integer", minimum: 1, maximum: 7 },
  },
  required: ["city", "days"],
  additionalProperties: false,
};
const clock = { type: "object", properties: { zone: { type: "string", maxLength: 12 } }, additionalProperties: false };
const TOOLS = [
  { type: "function", function: { name: "get_weather", description: "The weather in a city", parameters: weather } },
  { type: "function", function: { name: "get_time", description: "The time in a zone", parameters: clock } },
];
const ajv = new Ajv2020({ strict: false });
const validate = { get_weather: ajv.compile(weather), get_time: ajv.compile(clock) };
const ask = [{ role: "user", content: "What is the weather in Paris for 3 days?" }];

// every call names a tool and its arguments (a JSON string) validate against the tool's schema
function checkCalls(calls) {
  assert.ok(calls.length >= 1);
  for (const c of calls) {
    assert.equal(c.type, "function");
    assert.match(c.id, /^call_/);
    const v = validate[c.function.name];
    assert.ok(v, c.function.name);
    const args = JSON.parse(c.function.arguments);
    assert.ok(v(args), JSON.stringify(args) + " " + JSON.stringify(v.errors));
  }
}

before(async () => {
  makeDemoModel(MODEL);
  srv = await startServer(MODEL, ["-np", "4", "-c", "8192", "-t", "1"]);
  openai = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none" });
});

after(async () => {
  try {
    if (srv) await stopServer(srv);
  } finally {
    rmSync(dir, { recursive: true, force: true }); // the models, logs and files of this run
  }
});

test("openai: tool_choice required over many seeds at temperature 1: every call validates; streamed the same", async () => {
  for (let seed = 0; seed < SEEDS; seed++) {
    const body = { model: "m", messages: ask, tools: TOOLS, tool_choice: "required", temperature: 1, seed, max_tokens: 300 };
    const r = await openai.chat.completions.create(body);
    const ch = r.choices[0];
    assert.equal(ch.finish_reason, "tool_calls");
    assert.equal(ch.message.content, null);
    checkCalls(ch.message.tool_calls);
    // streamed: the openai client's stream of deltas, assembled as OpenAI's docs do
    const stream = await openai.chat.completions.create({ ...body, stream: true });
    const calls = [];
    let finish = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c) continue;
      for (const d of c.delta.tool_calls ?? []) {
        if (!calls[d.index]) calls[d.index] = { id: d.id, type: d.type, function: { name: d.function.name, arguments: "" } };
        calls[d.index].function.arguments += d.function.arguments ?? "";
      }
      finish = c.finish_reason ?? finish;
    }
    assert.equal(finish, "tool_calls");
    const strip = (c) => ({ type: c.type, function: c.function }); // ids are per request
    assert.deepEqual(calls.map(strip), ch.message.tool_calls.map(strip));
  }
});

test("openai: a forced function, one call only (parallel_tool_calls false), and none", async () => {
  for (let seed = 0; seed < SEEDS; seed++) {
    const r = await openai.chat.completions.create({
      model: "m", messages: ask, tools: TOOLS, seed, max_tokens: 300, parallel_tool_calls: false,
      tool_choice: { type: "function", function: { name: "get_time" } },
    });
    const calls = r.choices[0].message.tool_calls;
    checkCalls(calls);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].function.name, "get_time");
  }
  const none = await openai.chat.completions.create({ model: "m", messages: ask, tools: TOOLS, tool_choice: "none", seed: 1, max_tokens: 20 });
  assert.equal(none.choices[0].message.tool_calls, undefined);
  assert.equal(typeof none.choices[0].message.content, "string");
  assert.ok(!none.choices[0].message.content.startsWith("```tool_call"));
});

// With random weights a reply under auto opens the block only by chance (the grammar tests of
// test-grammar.c cover that branch); here: text replies, and one that starts like the block (its
// first token, ```, pushed by logit_bias) but goes on as text, stay text in full.
test("openai: auto: text replies, and a reply that starts like the block but is not one, stay text", async () => {
  const fence = (await (await fetch(srv.url + "/tokenize", { method: "POST", body: JSON.stringify({ content: "```" }) })).json()).tokens;
  assert.equal(fence.length, 1);
  let fenced = 0;
  for (let seed = 0; seed < SEEDS; seed++) {
    const base = { model: "m", messages: ask, tools: TOOLS, seed, max_tokens: 12 };
    const plain = await openai.chat.completions.create(base);
    assert.equal(plain.choices[0].message.tool_calls, undefined);
    assert.equal(typeof plain.choices[0].message.content, "string");
    const pushed = await openai.chat.completions.create({ ...base, logit_bias: { [fence[0]]: 100 } });
    const m = pushed.choices[0].message;
    assert.equal(m.tool_calls, undefined);
    assert.ok(m.content.startsWith("```"), JSON.stringify(m.content));
    assert.ok(!m.content.startsWith("```tool_call\n"));
    fenced++;
    // streamed, the held opening comes out as text too
    const stream = await openai.chat.completions.create({ ...base, logit_bias: { [fence[0]]: 100 }, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    assert.equal(text, m.content);
  }
  assert.equal(fenced, SEEDS);
});

test("a conversation with calls and results is templated as documented (a golden prompt)", async () => {
  const messages = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: null, tool_calls: [
      { id: "c1", type: "function", function: { name: "get_weather", arguments: "{\"city\": \"Paris\", \"days\": 1}" } },
      { id: "c2", type: "function", function: { name: "get_time", arguments: "{}" } }] },
    { role: "tool", tool_call_id: "c1", content: "18 C" },
    { role: "tool", tool_call_id: "c2", content: "noon" },
  ];
  const tools = [{ type: "function", function: { name: "get_time", parameters: { type: "object" } } }];
  const r = await (await fetch(srv.url + "/apply-template", { method: "POST", body: JSON.stringify({ messages, tools }) })).json();
  assert.equal(r.prompt,
    "<bos><start_of_turn>user\n" +
    "You have access to functions. If you decide to call any of them, reply with only this block, one line per call, " +
    "and no other text:\n```tool_call\n{\"name\": \"function_name\", \"arguments\": {\"parameter\": \"value\"}}\n```\n" +
    "The functions, with the JSON Schema of their arguments:\n[\n{\"name\":\"get_time\",\"parameters\":{\"type\":\"object\"}}\n]\n" +
    "Their results come back in ```tool_output blocks.\n\nBe brief.\n\nWeather in Paris?<end_of_turn>\n" +
    "<start_of_turn>model\n```tool_call\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\",\"days\":1}}\n" +
    "{\"name\":\"get_time\",\"arguments\":{}}\n```<end_of_turn>\n" +
    "<start_of_turn>user\n```tool_output\n{\"name\":\"get_weather\",\"content\":\"18 C\"}\n```\n\n" +
    "```tool_output\n{\"name\":\"get_time\",\"content\":\"noon\"}\n```<end_of_turn>\n<start_of_turn>model\n");
  // the same conversation through the API: accepted, answered
  const reply = await openai.chat.completions.create({ model: "m", messages, tools: TOOLS, seed: 2, max_tokens: 8, tool_choice: "none" });
  assert.equal(reply.choices[0].finish_reason, "length");
});

test("agents' tools that are not functions (web_search, custom) are left out, not refused", async () => {
  const r = await openai.chat.completions.create({
    model: "m", messages: ask, seed: 3, max_tokens: 200, tool_choice: "required",
    tools: [{ type: "web_search" }, { type: "custom", custom: { name: "apply_patch" } }, TOOLS[0]],
  });
  checkCalls(r.choices[0].message.tool_calls);
  assert.match(srv.log(), /tool 0 \(type web_search\) is not a function: left out/);
});

test("ollama-js: chat with tools (tool_choice as an extension), calls with arguments as objects; streamed", async () => {
  const ollama = new Ollama({ host: srv.url });
  for (let seed = 0; seed < SEEDS / 2; seed++) {
    const req = { model: "random", messages: ask, tools: TOOLS, tool_choice: "required", options: { seed, num_predict: 300 } };
    const r = await ollama.chat(req);
    assert.ok(r.message.tool_calls.length >= 1);
    for (const c of r.message.tool_calls) assert.ok(validate[c.function.name](c.function.arguments), JSON.stringify(c));
    const parts = await ollama.chat({ ...req, stream: true });
    const streamed = [];
    for await (const p of parts) streamed.push(...(p.message.tool_calls ?? []));
    assert.deepEqual(streamed, r.message.tool_calls);
  }
});

test("the AI SDK: generateText with a tool over two steps (the tool runs, its result goes back, text ends it)",
  { skip: sanitized }, async () => {
    const provider = createOpenAICompatible({ name: "gemma8", baseURL: srv.url + "/v1" });
    const ran = [];
    const r = await generateText({
      model: provider("m"),
      messages: ask,
      seed: 4,
      maxOutputTokens: 200,
      tools: {
        get_weather: tool({
          description: "The weather in a city",
          inputSchema: jsonSchema(weather),
          execute: async (args) => {
            ran.push(args);
            return { forecast: "sunny" };
          },
        }),
      },
      stopWhen: stepCountIs(3),
      prepareStep: ({ stepNumber }) => ({ toolChoice: stepNumber === 0 ? "required" : "none" }),
    });
    assert.ok(ran.length >= 1);
    for (const a of ran) assert.ok(validate.get_weather(a), JSON.stringify(a));
    assert.equal(r.steps.length, 2);
    assert.equal(r.steps[0].finishReason, "tool-calls");
    assert.equal(typeof r.text, "string");
    assert.ok(r.steps[1].request.body.messages ?? true);
  });

test("LangChain JS: bindTools with tool_choice any; the calls' args validate", { skip: sanitized }, async () => {
  const llm = new ChatOpenAI({ model: "m", apiKey: "none", configuration: { baseURL: srv.url + "/v1" }, maxTokens: 300, temperature: 1 });
  const bound = llm.bindTools([TOOLS[0]], { tool_choice: "required" });
  for (let seed = 0; seed < 3; seed++) {
    const m = await bound.invoke(ask[0].content, { seed });
    assert.ok(m.tool_calls.length >= 1);
    for (const c of m.tool_calls) {
      assert.equal(c.name, "get_weather");
      assert.ok(validate.get_weather(c.args), JSON.stringify(c.args));
    }
  }
});
