#!/bin/sh
# check.sh - (1) libgemma8.so exports exactly the functions the public header declares
# with GEMMA8_API; (2) a program linked against a library exporting ggml's gguf_* names
# (tests/exports/ggml_stub.c, each aborting) *before* libgemma8 still converts, loads and
# evaluates: gemma8's calls to its own GGUF and safetensors code stay inside it.
#   BUILD: the build folder holding libgemma8.so (default build)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
CC=${CC:-cc}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0

nm -D --defined-only "$BUILD/libgemma8.so" | awk '{print $3}' | sort > "$T/exported"
sed -n 's/^GEMMA8_API .*[ *]\(gemma8_[a-z0-9_]*\)(.*/\1/p' include/gemma8.h | sort > "$T/declared"
if diff "$T/declared" "$T/exported" > "$T/diff"; then
    echo "check-exports: libgemma8.so exports the header's $(wc -l < "$T/declared") functions and nothing else"
else
    echo "check-exports: the exports differ from the header's functions (< header only, > library only):"
    head -40 "$T/diff"
    fail=1
fi

$CC -shared -fPIC -o "$T/libggmlstub.so" tests/exports/ggml_stub.c
$CC -Iinclude tests/exports/prog.c -o "$T/prog" -L"$T" -Wl,--no-as-needed -lggmlstub -L"$BUILD" -lgemma8
if LD_LIBRARY_PATH="$T:$BUILD" "$T/prog" tests/data/tiny-a "$T/tiny-a.gguf" > "$T/out" 2>&1; then
    echo "check-exports: with ggml's gguf_* names linked first: $(cat "$T/out")"
else
    echo "check-exports: with ggml's gguf_* names linked first, the program failed:"
    cat "$T/out"
    fail=1
fi
exit $fail
