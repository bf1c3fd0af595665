// The llama.cpp baseline for `make bench`: the same model, threads and token
// counts as `gemma8 bench`, run through llama.cpp's prebuilt CPU libraries as
// node-llama-cpp ships them (npm), so both are measured on one machine in one run.
// usage: node bench/llamacpp.mjs -m MODEL.gguf [-t 2] [-p 512] [-n 128] [-d 0] [-r 1]
// (node-llama-cpp is looked up in $NLC_DIR, by default third_party/npm-bench)
import {resolve} from "node:path";
import {pathToFileURL} from "node:url";

const nlc = resolve(process.env.NLC_DIR ?? "third_party/npm-bench", "node_modules/node-llama-cpp/dist/index.js");
const {getLlama, LlamaLogLevel} = await import(pathToFileURL(nlc).href);

const opt = {t: 2, p: 512, n: 128, d: 0, r: 1};
const argv = process.argv.slice(2);
for (let i = 0; i + 1 < argv.length; i += 2) {
    const key = argv[i].replace(/^-+/, "");
    opt[key] = key === "m" ? argv[i + 1] : Number(argv[i + 1]);
}
if (!opt.m) {
    console.error("usage: node bench/llamacpp.mjs -m MODEL.gguf [-t N] [-p N] [-n N] [-d N] [-r N]");
    process.exit(2);
}
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: opt.t});
const model = await llama.loadModel({modelPath: opt.m, gpuLayers: 0, useMmap: true});
const ctx = await model.createContext({contextSize: Math.max(512, opt.p + opt.n + opt.d + 16), batchSize: 512,
                                       threads: {ideal: opt.t, min: opt.t}, flashAttention: false});
const seq = ctx.getSequence();
/* the same token pattern for every run; what the tokens are does not change the work */
const tokens = (k) => Array.from({length: k}, (_, i) => 1000 + ((i * 7919) % 200000));
const stat = (xs) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
    return `${mean.toFixed(2).padStart(8)} ± ${sd.toFixed(2)} tok/s`;
};
const pp = [], tg = [];
for (let rep = 0; rep < opt.r; rep++) {
    if (opt.p > 0) {
        await seq.clearHistory();
        const t0 = performance.now();
        await seq.evaluateWithoutGeneratingNewTokens(tokens(opt.p));
        pp.push(opt.p / ((performance.now() - t0) / 1000));
    }
    if (opt.n > 0) {
        await seq.clearHistory();
        if (opt.d > 0) await seq.evaluateWithoutGeneratingNewTokens(tokens(opt.d));
        let k = 0;
        const t0 = performance.now();
        for await (const _ of seq.evaluate([2], {temperature: 0})) if (++k >= opt.n) break;
        tg.push(opt.n / ((performance.now() - t0) / 1000));
    }
}
console.log(`llama.cpp (node-llama-cpp CPU build), ${opt.t} threads`);
if (pp.length) console.log(`pp${opt.p}    ${stat(pp)}`);
if (tg.length) console.log(`tg${opt.n}    ${stat(tg)}  (depth ${opt.d})`);
process.exit(0);
