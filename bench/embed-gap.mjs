// embed-gap.mjs - what embedding requests cost the streams: the largest gap between two
// tokens of a streamed reply, alone and while 20 embedding requests (long inputs) arrive
// on the other slots. A benchmark, not a test: it prints the figures.
// usage: node bench/embed-gap.mjs -m MODEL.gguf [-t 2] [-np 4] [-n 160] [--embeds 20] [--words 400] [--runs 3]
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
  console.error("usage: node bench/embed-gap.mjs -m MODEL.gguf [-t 2] [-np 4] [-n 160] [--embeds 20]");
  process.exit(2);
}
const nGen = Number(opt("-n", "160"));
const nEmbeds = Number(opt("--embeds", "20"));
const nWords = Number(opt("--words", "400"));
const runs = Number(opt("--runs", "3"));
const bin = resolve(process.env.GEMMA8 ?? "build/gemma8");
const port = await new Promise((res) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const url = `http://127.0.0.1:${port}`;
const slots = Number(opt("-np", "4"));
const srv = spawn(bin, ["serve", "-m", model, "--port", String(port), "-t", opt("-t", "2"), "-np", String(slots),
  "-c", String(slots * 2048), "--queue", "64"], { stdio: ["ignore", "ignore", "inherit"] });
for (let i = 0; ; i++) {
  try {
    if ((await fetch(url + "/health")).ok) break;
  } catch {}
  if (i > 600) throw new Error("the server did not start");
  await new Promise((r) => setTimeout(r, 100));
}

const WORDS = "the of and to in is was for on that with as by at from his her it an were are which this be".split(" ");
const text = (k) => Array.from({ length: nWords }, (_, i) => WORDS[(i * 7 + k * 13) % WORDS.length]).join(" ");

// one streamed reply: the times its tokens arrived; onToken(i) after token i
async function stream(onToken) {
  const r = await fetch(url + "/v1/completions", {
    method: "POST",
    body: JSON.stringify({ prompt: "Once upon a time", max_tokens: nGen, ignore_eos: true, temperature: 0, stream: true }),
  });
  const times = [];
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of r.body) {
    buf += dec.decode(chunk);
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith("data: {")) continue;
      if (JSON.parse(ev.slice(6)).choices?.[0]?.text === undefined) continue;
      times.push(performance.now());
      onToken(times.length);
    }
  }
  return times;
}

const largestGap = (t) => Math.max(...t.slice(2).map((x, i) => x - t[i + 1])); // after the first token

const alone = [];
const withEmbeds = [];
for (let r = 0; r < runs; r++) {
  alone.push(largestGap(await stream(() => {})));
  const pending = [];
  const t = await stream((i) => {
    if (i !== 10) return;
    for (let k = 0; k < nEmbeds; k++)
      pending.push(fetch(url + "/v1/embeddings", { method: "POST", body: JSON.stringify({ input: text(k) }) })
        .then((x) => x.json()));
  });
  const replies = await Promise.all(pending);
  const ok = replies.filter((x) => x.data?.[0]?.embedding?.length > 0).length;
  withEmbeds.push(largestGap(t));
  console.log(`run ${r + 1}: largest gap alone ${alone[r].toFixed(1)} ms, with ${nEmbeds} embeddings ` +
    `(${ok} answered) ${withEmbeds[r].toFixed(1)} ms`);
}
const worst = (a) => Math.max(...a);
console.log(`largest gap: alone ${worst(alone).toFixed(1)} ms, with embeddings ${worst(withEmbeds).toFixed(1)} ms: ` +
  `${(worst(withEmbeds) / worst(alone)).toFixed(2)}x (target <= 1.5x)`);
srv.kill("SIGTERM");
