// webui.test.mjs - the chat page at / in a real browser: Debian's chromium, headless, driven by
// playwright-core, against `gemma8 serve` on loopback with the demo model. Screenshots (desktop and
// phone width) go to $WEBUI_SHOTS (default build/).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { makeDemoModel, startServer, stopServer, sleep } from "./serverlib.mjs";

const require = createRequire(resolve(process.env.NPM_DIR ?? "third_party/npm") + "/");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = resolve(process.env.WEBUI_SHOTS ?? "build");
const dir = mkdtempSync(join(tmpdir(), "gemma8-webui-"));
const MODEL = join(dir, "demo.gguf");
const MESSAGE = "Why is the sky blue?";

let srv, browser;

before(async () => {
  makeDemoModel(MODEL);
  // a random adapter of the demo model's shape, so the page has one to offer
  const cfg = join(dir, "demo-config.json");
  writeFileSync(cfg, JSON.stringify({ hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16 }));
  const g = spawnSync(process.execPath, ["bench/random-lora.mjs", cfg, join(dir, "tuned"), "-r", "4"],
    { encoding: "utf8" });
  assert.equal(g.status, 0, g.stderr);
  srv = await startServer(MODEL, ["-np", "2", "-c", "8192", "-t", "1", "--lora", `tuned=${join(dir, "tuned")}:0`]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  try {
    await browser?.close();
    if (srv) assert.equal(await stopServer(srv), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true }); // the models, logs and files of this run
  }
});

async function openPage(url, viewport = { width: 1280, height: 800 }) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url + "/");
  return { page, errors };
}

async function settings(page, { temperature, maxTokens }) {
  await page.click("#settings-toggle");
  if (temperature !== undefined) await page.fill("#temperature", String(temperature));
  if (maxTokens !== undefined) await page.fill("#max-tokens", String(maxTokens));
  await page.click("#settings-toggle");
}

// Sends text and waits for its reply to end (a short reply may come and go between two polls, so
// the wait is for one more assistant message and the page idle again).
async function sendAndWait(page, text) {
  const before = await page.locator(".msg.assistant").count();
  await page.fill("#input", text);
  await page.click("#send");
  await page.waitForFunction((n) => document.querySelectorAll(".msg.assistant").length > n &&
    document.getElementById("app").dataset.state === "idle", before, { timeout: 60000 });
  return page.locator(".msg.assistant").last();
}

async function apiGreedy(messages, maxTokens, extra = {}) {
  const r = await fetch(srv.url + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ messages, temperature: 0, max_tokens: maxTokens, ...extra }) });
  assert.equal(r.status, 200);
  return (await r.json()).choices[0].message.content;
}

async function metric(name) {
  const text = await (await fetch(srv.url + "/metrics")).text();
  return Number(text.match(new RegExp(`^${name} (\\d+)`, "m"))[1]);
}

test("a message gets the streamed reply the API gives; stats, model name, conversations kept", async () => {
  const { page, errors } = await openPage(srv.url);
  const models = await (await fetch(srv.url + "/v1/models")).json();
  await page.waitForFunction((id) => document.getElementById("model-name").textContent === id, models.data[0].id);
  await settings(page, { temperature: 0, maxTokens: 24 });
  const reply = await sendAndWait(page, MESSAGE);
  const want = await apiGreedy([{ role: "user", content: MESSAGE }], 24);
  assert.equal(await reply.getAttribute("data-raw"), want);
  assert.match(await page.textContent("#stats"), /^\d+(\.\d+)? tok\/s · \d+ prompt tokens reused$/);
  // a second turn reuses the first turn's cache: the stats say how much
  await sendAndWait(page, "And at night?");
  const reused = Number((await page.textContent("#stats")).match(/· (\d+) prompt/)[1]);
  assert.ok(reused > 10, `reused ${reused}`);
  // kept in localStorage: a reload shows the conversation
  await page.reload();
  await page.waitForSelector(".msg.assistant");
  assert.equal(await page.locator(".msg.user").first().textContent(), MESSAGE);
  assert.equal(await page.locator(".msg.assistant").first().getAttribute("data-raw"), want);
  await page.screenshot({ path: join(SHOTS, "webui-desktop.png") });
  // a new chat starts empty, the old one stays in the list
  await page.click("#new-chat");
  assert.equal(await page.locator(".msg").count(), 0);
  assert.equal(await page.locator("#conversations li").count(), 2);
  assert.deepEqual(errors, []);
  await page.close();
});

test("stop aborts the request: the server counts it and frees the slot", async () => {
  const { page } = await openPage(srv.url);
  await settings(page, { temperature: 0, maxTokens: 4000 });
  const before = await metric("gemma8_requests_aborted_total");
  await page.fill("#input", "Tell me a long story.");
  await page.click("#send");
  await page.waitForFunction(() => {
    const m = [...document.querySelectorAll(".msg.assistant")].pop();
    return m && m.dataset.raw.length > 20;
  });
  await page.click("#stop");
  await page.waitForSelector("#app[data-state=idle]");
  assert.ok(await page.locator(".msg.assistant.stopped").count() === 1);
  for (let i = 0; i < 100 && (await metric("gemma8_requests_aborted_total")) === before; i++) await sleep(50);
  assert.equal(await metric("gemma8_requests_aborted_total"), before + 1);
  for (let i = 0; i < 100 && (await metric("gemma8_requests_processing")) > 0; i++) await sleep(50);
  assert.equal(await metric("gemma8_requests_processing"), 0);
  await page.close();
});

test("model output with <script> and <img onerror> is shown as text; code blocks and lists render", async () => {
  const { page, errors } = await openPage(srv.url);
  await settings(page, { temperature: 0, maxTokens: 200 });
  const hostile = "<script>window.__xss = 1</script> <img src=x onerror=\"window.__xss = 2\">";
  const md = "```\nlet a = `<b>not bold</b>`;\n```\n- one <i>\n- two\n\n1. first\n2. second";
  // the real model, its reply forced by a grammar added to the page's request (llama-server's field)
  const gbnf = (s) => "root ::= " + JSON.stringify(s);
  let grammar = gbnf(hostile);
  await page.route("**/v1/chat/completions", (route) => {
    const body = JSON.parse(route.request().postData());
    route.continue({ postData: JSON.stringify({ ...body, grammar }) });
  });
  const reply = await sendAndWait(page, "Say something.");
  assert.equal(await reply.getAttribute("data-raw"), hostile);
  assert.equal(await reply.textContent(), hostile);
  assert.equal(await reply.locator("script, img").count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  grammar = gbnf(md);
  const r2 = await sendAndWait(page, "Some markdown.");
  assert.equal(await r2.locator("pre code").textContent(), "let a = `<b>not bold</b>`;");
  assert.deepEqual(await r2.locator("ul li").allTextContents(), ["one <i>", "two"]);
  assert.deepEqual(await r2.locator("ol li").allTextContents(), ["first", "second"]);
  assert.equal(await r2.locator("b, i").count(), 0);
  assert.deepEqual(errors, []);
  await page.close();
});

test("settings go into the request: system prompt, top-p, JSON mode, the server's LoRA adapters", async () => {
  const { page } = await openPage(srv.url);
  await page.waitForSelector("#lora option[value='0']", { state: "attached" });
  assert.equal(await page.textContent("#lora option[value='0']"), "tuned");
  await page.click("#settings-toggle");
  await page.fill("#system", "Answer in JSON.");
  await page.fill("#temperature", "0");
  await page.fill("#top-p", "0.5");
  await page.fill("#max-tokens", "60");
  await page.check("#json-mode");
  await page.selectOption("#lora", "0");
  const sent = page.waitForRequest("**/v1/chat/completions");
  const reply = await sendAndWait(page, MESSAGE);
  const body = JSON.parse((await sent).postData());
  assert.deepEqual(body.messages, [{ role: "system", content: "Answer in JSON." }, { role: "user", content: MESSAGE }]);
  assert.equal(body.top_p, 0.5);
  assert.deepEqual(body.response_format, { type: "json_object" });
  assert.deepEqual(body.lora, [{ id: 0, scale: 1 }]);
  const text = await reply.getAttribute("data-raw");
  assert.equal(typeof JSON.parse(text), "object");
  const { messages, ...rest } = body;
  assert.equal(text, await apiGreedy(messages, 60, { ...rest, stream: false }));
  await page.close();
});

test("390 px wide: nothing overflows, the composer and the conversations menu work", async () => {
  const { page } = await openPage(srv.url, { width: 390, height: 844 });
  await settings(page, { temperature: 0, maxTokens: 16 });
  const reply = await sendAndWait(page, MESSAGE);
  assert.ok((await reply.getAttribute("data-raw")).length > 0);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `overflows by ${overflow} px`);
  for (const id of ["#input", "#send", "#menu"]) assert.ok(await page.isVisible(id), id);
  assert.ok(!(await page.isVisible("#sidebar")));
  const box = await page.locator("#send").boundingBox();
  assert.ok(box.x + box.width <= 390);
  await page.screenshot({ path: join(SHOTS, "webui-phone.png") });
  await page.click("#menu");
  assert.ok(await page.isVisible("#sidebar"));
  await page.close();
});

test("with --api-key the page loads, asks for the key, then works; --no-webui is a 404", async () => {
  const keyed = await startServer(MODEL, ["-np", "1", "-c", "2048", "-t", "1", "--api-key", "s3cret"]);
  try {
    const { page } = await openPage(keyed.url);
    await page.waitForSelector("#key-dialog[open]");
    await page.fill("#key-input", "s3cret");
    await page.click("#key-save");
    await page.waitForFunction(() => document.getElementById("model-name").textContent !== "gemma8");
    await settings(page, { temperature: 0, maxTokens: 8 });
    const reply = await sendAndWait(page, MESSAGE);
    assert.ok((await reply.getAttribute("data-raw")).length > 0);
    assert.equal(await page.evaluate(() => localStorage.getItem("gemma8.key")), "s3cret");
    await page.close();
  } finally {
    assert.equal(await stopServer(keyed), 0);
  }
  const off = await startServer(MODEL, ["-np", "1", "-c", "2048", "-t", "1", "--no-webui"]);
  try {
    assert.equal((await fetch(off.url + "/")).status, 404);
    assert.equal((await fetch(off.url + "/webui/app.js")).status, 404);
    assert.equal((await fetch(off.url + "/health")).status, 200);
  } finally {
    assert.equal(await stopServer(off), 0);
  }
  assert.ok(existsSync(join(SHOTS, "webui-desktop.png")) && existsSync(join(SHOTS, "webui-phone.png")));
});
