#!/usr/bin/env python3
"""llama-server-wrapper.py - `llama-server` for llama.cpp's server test suite, running `gemma8 serve`.

The suite starts LLAMA_SERVER_BIN_PATH with llama-server's options; this maps them to gemma8's.
Its presets name Hugging Face models (--hf-repo, --hf-file, --model-url): every one is served by
GEMMA8_SUITE_MODEL, a tiny model with the real Gemma tokenizer (so tests that check the preset
model's own text fail; the closing note lists them). Options for features gemma8 leaves out on
purpose (speculative decoding, reranking, infill's models, context shift, the router, vision,
reasoning formats, MCP and built-in tools) are dropped with a line saying so: the server starts
(the suite starts every preset once before any test) and the tests of those features fail.
Environment: GEMMA8 (the binary), GEMMA8_SUITE_MODEL (the model)."""
import os
import sys

# llama-server option -> (gemma8 option, takes a value)
MAPPED = {
    "--host": ("--host", True), "--port": ("--port", True), "--temp": ("--temp", True),
    "--seed": ("--seed", True), "-s": ("--seed", True), "--alias": ("--alias", True), "-a": ("--alias", True),
    "--ctx-size": ("-c", True), "-c": ("-c", True), "--parallel": ("-np", True), "-np": ("-np", True),
    "--n-predict": ("-n", True), "-n": ("-n", True), "--threads": ("-t", True), "-t": ("-t", True),
    "--batch-size": ("-b", True), "-b": ("-b", True), "--api-key": ("--api-key", True),
    "--cors-origins": ("--cors-origins", True), "--lora": ("--lora", True),
    "--slot-save-path": ("--slot-save-path", True), "--model": ("-m", True), "-m": ("-m", True),
    "--sleep-idle-seconds": ("--sleep-idle-seconds", True), "--no-slots": ("--no-slots", False),
    "--tags": ("--tags", True), "--pooling": ("--pooling", True),
    "--kv-unified": ("--kv-unified", False), "-kvu": ("--kv-unified", False),
    "--no-kv-unified": ("--no-kv-unified", False), "-no-kvu": ("--no-kv-unified", False),
    "--cache-ram": ("--cache-ram", True), "-cram": ("--cache-ram", True),
    "--cache-idle-slots": ("--cache-idle-slots", False), "--no-cache-idle-slots": ("--no-cache-idle-slots", False),
}
# llama-server options with nothing to do here (GPU, batching gemma8 always does, its own web page)
IGNORED = {
    "--ubatch-size": True, "-ub": True, "--n-gpu-layers": True, "-ngl": True, "--cont-batching": False,
    "--embedding": False, "--embeddings": False, "--metrics": False, "--slots": False,
    "--jinja": False, "--no-jinja": False, "--offline": False, "-fa": True,
    "--flash-attn": True, "--verbose": False, "--no-ui": False,
    "--log-file": True, "--chat-template": True,
    "-ctk": True, "-ctv": True, "--cache-type-k": True, "--cache-type-v": True,
}
HF = {"--hf-repo": True, "-hf": True, "--hf-file": True, "-hff": True, "--model-url": True, "-mu": True}
LEFT_OUT = {
    "--model-draft": "speculative decoding", "--spec-type": "speculative decoding",
    "--spec-draft-n-max": "speculative decoding", "--spec-draft-n-min": "speculative decoding",
    "--reranking": "/rerank", "--context-shift": "context shift", "--grp-attn-n": "self-extend",
    "--grp-attn-w": "self-extend", "--models-dir": "the router mode", "--models-max": "the router mode",
    "--models-preset": "the router mode", "--no-models-autoload": "the router mode",
    "--mmproj-url": "vision", "--media-path": "vision", "--reasoning-format": "reasoning formats",
    "--reasoning": "reasoning formats", "--chat-template-file": "templates other than Gemma's",
"--ui-mcp-proxy": "MCP", "--tools": "built-in tools",
    "--mcp-servers-config": "MCP", "--mcp-servers-json": "MCP", "--backend_sampling": "backend sampling",
}
FLAGS = {"--reranking", "--context-shift", "--no-models-autoload", "--ui-mcp-proxy", "--backend_sampling"}


def main(argv):
    out = [os.environ.get("GEMMA8", "gemma8"), "serve", "--log-health"]
    model = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in LEFT_OUT:
            print(f"llama-server-wrapper: {a}: {LEFT_OUT[a]} is left out of gemma8 on purpose", file=sys.stderr)
            i += 1 if a in FLAGS else 2
            continue
        if a in MAPPED:
            name, has_value = MAPPED[a]
            if not has_value:
                out.append(name)
                i += 1
                continue
            if name == "-m":
                model = argv[i + 1]
            else:
                out += [name, argv[i + 1]]
            if name == "--pooling" and argv[i + 1] not in ("mean", "none"):
                print(f"llama-server-wrapper: --pooling {argv[i + 1]}: gemma8 pools by mean", file=sys.stderr)
                out = out[:-2]
            if name == "--slot-save-path":
                os.makedirs(argv[i + 1], exist_ok=True)
            i += 2
        elif a in HF:
            model = model or os.environ["GEMMA8_SUITE_MODEL"]
            i += 2
        elif a in IGNORED:
            i += 2 if IGNORED[a] else 1
        else:
            print(f"llama-server-wrapper: unknown option {a}", file=sys.stderr)
            return 2
    out += ["-m", model or os.environ["GEMMA8_SUITE_MODEL"], "--cors-origins", "*"]
    if "--cors-origins" in out[:-2]:  # the suite's own choice wins
        out = out[:-2]
    os.execvp(out[0], out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
