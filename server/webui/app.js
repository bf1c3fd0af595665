// gemma8's chat page: talks to the server's own OpenAI API (/v1/chat/completions, streamed).
// Model text is only ever put in the page as text (textContent), never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const STORE = "gemma8.conversations";
const KEY = "gemma8.key";

let conversations = load(STORE, []);
for (const c of conversations) for (const m of c.messages) delete m.pending; // a page closed mid-reply
let current = conversations.length ? conversations[0].id : null;
let controller = null; // the running request's AbortController

function load(name, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(name));
    return v === null ? fallback : v;
  } catch {
    return fallback;
  }
}

function save() {
  localStorage.setItem(STORE, JSON.stringify(conversations));
}

function conversation() {
  return conversations.find((c) => c.id === current);
}

function newConversation() {
  const c = { id: Date.now().toString(36) + Math.random().toString(36).slice(2, 6), title: "New chat",
    system: $("system").value, messages: [] };
  conversations.unshift(c);
  current = c.id;
  save();
  render();
}

// ---- the API -----------------------------------------------------------------------------------

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = localStorage.getItem(KEY);
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

// fetch, asking for the key (and trying once more) when the server says 401
async function api(path, options = {}) {
  let r = await fetch(path, { ...options, headers: headers() });
  if (r.status === 401) {
    await askKey();
    r = await fetch(path, { ...options, headers: headers() });
  }
  return r;
}

function askKey() {
  return new Promise((resolve) => {
    const d = $("key-dialog");
    $("key-input").value = "";
    d.addEventListener("close", () => {
      localStorage.setItem(KEY, $("key-input").value);
      resolve();
    }, { once: true });
    d.showModal();
  });
}

async function loadServerInfo() {
  const r = await api("/v1/models");
  if (r.ok) {
    const m = await r.json();
    if (m.data && m.data.length) $("model-name").textContent = m.data[0].id;
  }
  const l = await api("/lora-adapters");
  if (l.ok) {
    for (const a of await l.json()) {
      const o = document.createElement("option");
      o.value = String(a.id);
      o.textContent = a.name || String(a.path).split("/").pop();
      $("lora").append(o);
    }
  }
}

function request(c) {
  const messages = [];
  if (c.system.trim()) messages.push({ role: "system", content: c.system });
  for (const m of c.messages) if (!m.pending) messages.push({ role: m.role, content: m.content });
  const body = {
    messages, stream: true,
    temperature: Number($("temperature").value),
    top_p: Number($("top-p").value),
    max_tokens: Number($("max-tokens").value),
  };
  if ($("json-mode").checked) body.response_format = { type: "json_object" };
  if ($("lora").value !== "") body.lora = [{ id: Number($("lora").value), scale: 1 }];
  return body;
}

// Server-sent events of a streamed chat completion: each data line's JSON to onEvent.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      onEvent(JSON.parse(data));
    }
  }
}

async function send(text) {
  const c = conversation() || (newConversation(), conversation());
  c.system = $("system").value;
  c.messages.push({ role: "user", content: text });
  if (c.title === "New chat") c.title = text.slice(0, 40);
  const reply = { role: "assistant", content: "", pending: true };
  const body = request(c);
  c.messages.push(reply);
  save();
  render();
  setBusy(true);
  showError("");
  controller = new AbortController();
  const view = $("messages").lastElementChild;
  try {
    const r = await api("/v1/chat/completions", { method: "POST", body: JSON.stringify(body),
      signal: controller.signal });
    if (!r.ok) {
      const e = await r.json().catch(() => ({}));
      throw new Error((e.error && e.error.message) || r.statusText);
    }
    await readEvents(r, (ev) => {
      if (ev.error) throw new Error(ev.error.message || "the server failed");
      const delta = ev.choices && ev.choices[0] && ev.choices[0].delta;
      if (delta && delta.content) {
        reply.content += delta.content;
        renderMessage(view, reply);
        $("messages").scrollTop = $("messages").scrollHeight;
      }
      if (ev.timings) showStats(ev.timings);
    });
  } catch (e) {
    if (e.name === "AbortError") reply.stopped = true;
    else showError(e.message);
  } finally {
    delete reply.pending;
    controller = null;
    save();
    renderMessage(view, reply);
    setBusy(false);
  }
}

function showStats(t) {
  const rate = t.predicted_per_second ? t.predicted_per_second.toFixed(1) : "?";
  $("stats").textContent = `${rate} tok/s · ${t.cache_n} prompt tokens reused`;
}

function showError(text) {
  $("error").hidden = !text;
  $("error").textContent = text;
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").hidden = !busy;
  $("app").dataset.state = busy ? "busy" : "idle";
}

// ---- rendering: markdown's code blocks, lists and inline code, all as text nodes -----------------

function inline(parent, text) {
  const parts = text.split(/(`[^`\n]+`|\*\*[^*\n]+\*\*)/);
  for (const p of parts) {
    if (!p) continue;
    let el;
    if (p.length > 2 && p.startsWith("`") && p.endsWith("`")) {
      el = document.createElement("code");
      el.textContent = p.slice(1, -1);
    } else if (p.length > 4 && p.startsWith("**") && p.endsWith("**")) {
      el = document.createElement("strong");
      el.textContent = p.slice(2, -2);
    } else {
      el = document.createTextNode(p);
    }
    parent.append(el);
  }
}

function markdown(container, text) {
  container.textContent = "";
  const lines = text.split("\n");
  let list = null;
  let para = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*```(.*)$/);
    if (fence) {
      const code = [];
      for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) code.push(lines[i]);
      const pre = document.createElement("pre");
      const el = document.createElement("code");
      el.textContent = code.join("\n");
      pre.append(el);
      container.append(pre);
      list = para = null;
      continue;
    }
    const item = line.match(/^\s*([-*+]|\d+[.)])\s+(.*)$/);
    if (item) {
      const tag = /\d/.test(item[1]) ? "OL" : "UL";
      if (!list || list.tagName !== tag) {
        list = document.createElement(tag);
        container.append(list);
      }
      const li = document.createElement("li");
      inline(li, item[2]);
      list.append(li);
      para = null;
      continue;
    }
    list = null;
    if (!line.trim()) {
      para = null;
      continue;
    }
    if (!para) {
      para = document.createElement("p");
      container.append(para);
    } else {
      para.append(document.createTextNode("\n"));
    }
    inline(para, line);
  }
}

function renderMessage(el, m) {
  el.className = "msg " + m.role + (m.stopped ? " stopped" : "");
  el.dataset.raw = m.content;
  if (m.role === "assistant") markdown(el, m.content);
  else el.textContent = m.content;
}

function render() {
  const list = $("conversations");
  list.textContent = "";
  for (const c of conversations) {
    const li = document.createElement("li");
    li.textContent = c.title;
    if (c.id === current) li.className = "current";
    li.addEventListener("click", () => {
      current = c.id;
      $("sidebar").classList.remove("open");
      render();
    });
    list.append(li);
  }
  const c = conversation();
  $("system").value = c ? c.system : $("system").value;
  const box = $("messages");
  box.textContent = "";
  for (const m of c ? c.messages : []) {
    const el = document.createElement("div");
    renderMessage(el, m);
    box.append(el);
  }
  box.scrollTop = box.scrollHeight;
}

// ---- wiring ------------------------------------------------------------------------------------

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});
$("stop").addEventListener("click", () => controller && controller.abort());
$("new-chat").addEventListener("click", () => {
  if (!controller) newConversation();
});
$("settings-toggle").addEventListener("click", () => ($("settings").hidden = !$("settings").hidden));
$("menu").addEventListener("click", () => $("sidebar").classList.toggle("open"));
$("system").addEventListener("change", () => {
  const c = conversation();
  if (c) {
    c.system = $("system").value;
    save();
  }
});

setBusy(false);
render();
loadServerInfo().catch((e) => showError("the server did not answer: " + e.message));
