// random-lora.mjs - a PEFT LoRA adapter folder with random weights for a Gemma 2
// config.json (all seven projections of every layer), for benchmarks.
// usage: node bench/random-lora.mjs CONFIG.json OUT_DIR [-r 16] [--alpha 32] [--amplitude 0.02]
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";

const args = process.argv.slice(2);
const opt = (name, def) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : def);
const [configPath, out] = args;
if (!configPath || !out) {
  console.error("usage: node bench/random-lora.mjs CONFIG.json OUT_DIR [-r 16] [--alpha 32]");
  process.exit(2);
}
const c = JSON.parse(readFileSync(configPath, "utf8"));
const r = Number(opt("-r", "16"));
const alpha = Number(opt("--alpha", "32"));
const hd = c.head_dim ?? c.hidden_size / c.num_attention_heads;
const E = c.hidden_size, Q = c.num_attention_heads * hd, KV = c.num_key_value_heads * hd, F = c.intermediate_size;
const mods = [["self_attn.q_proj", E, Q], ["self_attn.k_proj", E, KV], ["self_attn.v_proj", E, KV],
  ["self_attn.o_proj", Q, E], ["mlp.gate_proj", E, F], ["mlp.up_proj", E, F], ["mlp.down_proj", F, E]];
let seed = 1;
const amplitude = Number(opt("--amplitude", "0.02"));
const rnd = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5) * amplitude;
const header = {};
const parts = [];
let offset = 0;
for (let l = 0; l < c.num_hidden_layers; l++)
  for (const [name, inDim, outDim] of mods)
    for (const [side, shape] of [["A", [r, inDim]], ["B", [outDim, r]]]) {
      const data = new Float32Array(shape[0] * shape[1]).map(rnd);
      const key = `base_model.model.model.layers.${l}.${name}.lora_${side}.weight`;
      header[key] = { dtype: "F32", shape, data_offsets: [offset, offset + data.byteLength] };
      offset += data.byteLength;
      parts.push(Buffer.from(data.buffer));
    }
let json = Buffer.from(JSON.stringify(header));
json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
const len = Buffer.alloc(8);
len.writeBigUInt64LE(BigInt(json.length));
mkdirSync(out, { recursive: true });
writeFileSync(`${out}/adapter_model.safetensors`, Buffer.concat([len, json, ...parts]));
writeFileSync(`${out}/adapter_config.json`, JSON.stringify({ peft_type: "LORA", r, lora_alpha: alpha, bias: "none",
  target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] }, null, 1));
console.log(`${out}: r = ${r}, ${c.num_hidden_layers} layers x 7 projections, ${(offset / 1e6).toFixed(1)} MB`);
