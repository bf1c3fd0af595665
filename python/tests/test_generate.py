"""Generation from Python: the CLI's output, constrained output, sequences, threads, aborts, Ctrl-C,
errors, conversion and memory over many create-free cycles."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import jsonschema
import pytest

import gemma8

from conftest import BIN, DATA, REPO

HI = [{"role": "user", "content": "Why is the sky blue?"}]


def cli_run(model, prompt, n, system=None):
    args = [str(BIN), "run", "-m", model, "-p", prompt, "-n", str(n), "--temp", "0", "-q", "-t", "1"]
    if system:
        args += ["--system", system]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.removesuffix("\n")


@pytest.mark.parametrize("system", [None, "Answer briefly."])
def test_streamed_chat_equals_gemma8_run(demo, system):
    msgs = ([{"role": "system", "content": system}] if system else []) + HI
    with gemma8.Model(demo, threads=1) as m:
        pieces = list(m.chat(msgs, stream=True, temperature=0, max_tokens=24))
        assert len(pieces) > 1 and m.last_result.n_generated == 24
        assert "".join(pieces) == cli_run(demo, HI[0]["content"], 24, system)
        # the same, not streamed, and through create_chat_completion
        assert m.chat(msgs, temperature=0, max_tokens=24) == "".join(pieces)
        r = m.create_chat_completion(msgs, temperature=0, max_tokens=24)
        assert r["choices"][0]["message"]["content"] == "".join(pieces)
        assert r["usage"]["completion_tokens"] == 24 and r["choices"][0]["finish_reason"] == "length"


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}


def test_json_schema_output_is_valid(demo):
    with gemma8.Model(demo, threads=2) as m:
        for seed in range(4):
            text = m.chat(HI, json_schema=SCHEMA, temperature=1.0, seed=seed, max_tokens=120)
            jsonschema.validate(json.loads(text), SCHEMA)
            fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
            r = m.create_chat_completion(
                HI, response_format=fmt, seed=seed, temperature=1.0, max_tokens=120
            )
            jsonschema.validate(json.loads(r["choices"][0]["message"]["content"]), SCHEMA)
        any_object = m.create_chat_completion(
            HI, response_format={"type": "json_object"}, seed=3, max_tokens=80
        )
        assert isinstance(json.loads(any_object["choices"][0]["message"]["content"]), dict)


def test_gbnf_grammar(demo):
    with gemma8.Model(demo, threads=2) as m:
        for seed in range(5):
            assert m.chat(HI, grammar='root ::= "yes" | "no"', temperature=1.0, seed=seed) in ("yes", "no")
        g = gemma8.Grammar.from_gbnf('root ::= [0-9]+ "!"')
        assert "root" in g.gbnf
        assert m.chat(HI, grammar=g, seed=1, max_tokens=6).endswith("!")


def test_tools_give_calls_with_valid_arguments(demo):
    params = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["city", "days"],
    }
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather", "parameters": params},
        }
    ]
    with gemma8.Model(demo, threads=2) as m:
        r = m.create_chat_completion(HI, tools=tools, tool_choice="required", seed=5, max_tokens=120)
        choice = r["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        call = choice["message"]["tool_calls"][0]
        assert call["function"]["name"] == "get_weather"
        jsonschema.validate(json.loads(call["function"]["arguments"]), params)
        # streamed: the same call, as a tool_calls delta
        chunks = list(
            m.create_chat_completion(
                HI, tools=tools, tool_choice="required", seed=5, max_tokens=120, stream=True
            )
        )
        deltas = [c["choices"][0]["delta"] for c in chunks]
        streamed = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
        assert [c["function"]["arguments"] for c in streamed] == [
            c["function"]["arguments"] for c in choice["message"]["tool_calls"]
        ]
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
        # the conversation goes on with the call and its result
        history = HI + [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "18 C"}]
        prompt = m.detokenize(m.chat_tokens(history))
        assert '```tool_output\n{"name":"get_weather","content":"18 C"}\n```' in prompt
        assert "```tool_call\n" in prompt
        none = m.create_chat_completion(HI, tools=tools, tool_choice="none", seed=5, max_tokens=10)
        assert none["choices"][0]["finish_reason"] != "tool_calls"
        with pytest.raises(ValueError, match="tool_choice"):
            m.create_chat_completion(HI, tool_choice="required")


def test_completion_and_echo(demo):
    with gemma8.Model(demo, threads=2) as m:
        plain = "".join(m.generate("The sky is", temperature=0, max_tokens=8))
        r = m.create_completion("The sky is", temperature=0, max_tokens=8)
        assert r["object"] == "text_completion" and r["choices"][0]["text"] == plain
        assert (
            m("The sky is", temperature=0, max_tokens=8, echo=True)["choices"][0]["text"]
            == "The sky is" + plain
        )
        chunks = list(m.create_completion("The sky is", temperature=0, max_tokens=8, stream=True))
        assert "".join(c["choices"][0]["text"] for c in chunks) == plain
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        stopped = m.create_completion("The sky is", temperature=0, max_tokens=8, stop=[plain.split()[1]])
        assert stopped["choices"][0]["finish_reason"] == "stop"


def test_seeds_reproduce(demo):
    with gemma8.Model(demo, threads=2) as m:
        a = m.chat(HI, temperature=1.0, seed=7, max_tokens=16)
        b = m.chat(HI, temperature=1.0, seed=7, max_tokens=16)
        c = m.chat(HI, temperature=1.0, seed=8, max_tokens=16)
    assert a == b and a != c


def test_sequences_of_one_context_batch_bit_identically(demo):
    prompts = ["The sky is", "Once upon a time", "def main():"]
    with gemma8.Model(demo, threads=2, n_seq=3) as m:
        together = m.generate_batch(prompts, temperature=0.9, seed=3, max_tokens=12, ignore_eos=True)
        alone = [
            "".join(m.generate(p, temperature=0.9, seed=3, max_tokens=12, ignore_eos=True, seq=i))
            for i, p in enumerate(prompts)
        ]
        assert together == alone
        assert m.n_past(2) > 0
        m.reset(2)
        assert m.n_past(2) == 0 and m.n_past(1) > 0


def test_abort_from_another_thread(demo):
    with gemma8.Model(demo, threads=1) as m:
        first = threading.Event()
        got = []

        def run():
            try:
                for p in m.generate("Tell a story", temperature=0, max_tokens=2000, ignore_eos=True):
                    got.append(p)
                    first.set()
            except gemma8.Aborted as e:
                got.append(e)

        t = threading.Thread(target=run)
        t.start()
        assert first.wait(30)
        m.abort()
        t.join(30)
        assert not t.is_alive() and isinstance(got[-1], gemma8.Aborted)
        assert m.last_result.stop_reason == "aborted" and m.last_result.n_generated < 2000
        # still usable: the same reply as a fresh Model's
        again = "".join(m.generate("Tell a story", temperature=0, max_tokens=10))
    with gemma8.Model(demo, threads=1) as fresh:
        assert again == "".join(fresh.generate("Tell a story", temperature=0, max_tokens=10))


def test_two_threads_generate_at_once(demo):
    prompts = ["The sky is", "Once upon a time"]
    with gemma8.Model(demo, threads=1) as m:
        solo = [
            "".join(m.generate(p, temperature=0.8, seed=11, max_tokens=40, ignore_eos=True))
            for p in prompts
        ]
    models = [gemma8.Model(demo, threads=1) for _ in prompts]
    out = [None, None]
    spans = [None, None]

    def run(i):
        t0 = time.monotonic()
        out[i] = "".join(
            models[i].generate(prompts[i], temperature=0.8, seed=11, max_tokens=40, ignore_eos=True)
        )
        spans[i] = (t0, time.monotonic())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x in models:
        x.close()
    assert out == solo
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]  # they overlapped


def test_the_gil_is_released_while_the_library_computes(models):
    """While one thread is inside one long library call, another runs Python."""
    with gemma8.Model(models("tiny-long"), threads=1) as m:
        ids = [2] + [5 + i % 200 for i in range(3000)]
        inside = {}

        def long_call():
            inside["t0"] = time.monotonic()
            m.logits(ids)
            inside["t1"] = time.monotonic()

        t = threading.Thread(target=long_call)
        ticks = []
        t.start()
        while t.is_alive():
            ticks.append(time.monotonic())
            time.sleep(0.001)
        t.join()
    t0, t1 = inside["t0"], inside["t1"]
    assert t1 - t0 > 0.05, "the call is too short to show anything"
    during = [x for x in ticks if t0 + 0.01 < x < t1 - 0.01]
    assert len(during) > 5


CTRL_C = """
import os, signal, sys, threading, gemma8
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job ignores it)
m = gemma8.Model(sys.argv[1], threads=1)
n = 0
try:
    for p in m.generate("Tell a story", temperature=0, max_tokens=100000, ignore_eos=True):
        n += 1
        if n == 5:
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted", m.last_result.stop_reason, m.last_result.n_generated < 100000)
print("again", "".join(m.generate("Tell a story", temperature=0, max_tokens=10)))
"""


def test_ctrl_c_interrupts_and_the_model_stays_usable(demo):
    r = subprocess.run([sys.executable, "-c", CTRL_C, demo], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "interrupted aborted True"
    with gemma8.Model(demo, threads=1) as fresh:
        assert lines[1] == "again " + "".join(fresh.generate("Tell a story", temperature=0, max_tokens=10))


def test_bad_paths_and_arguments_raise_clearly(demo, tmp_path):
    with pytest.raises(gemma8.Gemma8IOError, match="no-such.gguf"):
        gemma8.Model(tmp_path / "no-such.gguf")
    bad = tmp_path / "garbage.gguf"
    bad.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\xff" * 200)
    with pytest.raises(gemma8.FormatError, match="garbage.gguf"):
        gemma8.Model(bad)
    with pytest.raises(ValueError, match="threads"):
        gemma8.Model(demo, threads=-1)
    with gemma8.Model(demo, threads=1, n_ctx=64) as m:
        with pytest.raises(ValueError, match="seq"):
            m.chat(HI, seq=3)
        with pytest.raises(ValueError, match="vocabulary"):
            m.logits([2, 10**7])
        with pytest.raises(gemma8.ContextFullError):
            m.chat([{"role": "user", "content": "word " * 200}])
        with pytest.raises(gemma8.InvalidArgumentError, match="root"):
            m.chat(HI, grammar='start ::= "a"')
        with pytest.raises(gemma8.Gemma8Error, match="patternProperties|not supported|unsupported"):
            gemma8.Grammar.from_json_schema(
                {"type": "object", "patternProperties": {"^a": {"type": "string"}}}
            )
        with pytest.raises(ValueError, match="typical_p"):
            m.create_chat_completion(HI, typical_p=0.5)
        with pytest.raises(TypeError, match="no_such_arg"):
            m.create_chat_completion(HI, no_such_arg=1)
        with pytest.raises(ValueError, match="role"):
            m.chat([{"role": "robot", "content": "x"}])
        with pytest.raises(ValueError, match="max_tokens"):
            m.chat(HI, max_tokens=0)
        with pytest.raises(gemma8.Gemma8IOError):
            m.chat(HI, lora=str(tmp_path / "no-adapter.gguf"))
        # one call at a time: an unfinished generation holds the Model
        it = m.generate("a", max_tokens=5)
        with pytest.raises(RuntimeError, match="busy"):
            m.chat(HI)
        with pytest.raises(RuntimeError, match="closed while"):
            m.close()
        it.close()
        assert isinstance(m.chat(HI, max_tokens=2), str)
    m.close()
    with pytest.raises(ValueError, match="closed"):
        m.chat(HI)


def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_rss_over_1000_create_free_cycles(models):
    path = models("tiny-a", "q8_0")
    first = None
    for i in range(1000):
        with gemma8.Model(path, threads=1, n_ctx=64) as m:
            m.logits([2, 3, 4])
        if i == 9:
            first = rss_kib()
    assert rss_kib() - first < 10 * 1024, (first, rss_kib())


def test_convert_quantize_and_cancel(tmp_path):
    q8 = tmp_path / "a-q8_0.gguf"
    seen = []
    gemma8.convert(DATA / "tiny-a", q8, progress=lambda what, done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1]
    q4 = tmp_path / "a-q4_0.gguf"
    gemma8.quantize(q8, q4, type="q4_0")
    with gemma8.Model(q8) as a, gemma8.Model(q4) as b:
        assert (a.info.matrix_type, b.info.matrix_type) == ("q8_0", "q4_0")
        assert a.info.arch == "gemma2" and a.info.n_layer == 4
    cancelled = tmp_path / "cancelled.gguf"
    with pytest.raises(gemma8.Aborted):
        gemma8.convert(DATA / "tiny-a", cancelled, type="f32", progress=lambda *a: False)
    assert not cancelled.exists() and not [p for p in os.listdir(tmp_path) if p.startswith("cancelled")]
    with pytest.raises(gemma8.Gemma8Error, match="config.json"):
        gemma8.convert(tmp_path, tmp_path / "x.gguf")
    lora = tmp_path / "lora.gguf"
    gemma8.convert_lora(DATA / "tiny-a-lora", lora)
    with gemma8.Model(q8, lora=[(lora, 0.5)]) as m:
        assert m.chat_tokens  # loads with the adapter


def test_readme_script_in_a_fresh_venv(demo, tmp_path):
    """A new venv, `pip install ./python` as the README says, then the README's example, as
    written there, on the demo model."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    r = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "./python"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- python-example -->")[1].split("```python")[1].split("```")[0]
    assert len(block.strip().splitlines()) == 3
    script = block.replace("gemma-3-1b-it.gguf", demo)
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()  # the demo model's (meaningless) reply


def test_signal_handler_is_restored_and_an_ignored_sigint_left_alone(demo):
    """The handler a call puts in for Ctrl-C is taken out again. Python's own handler is set first,
    as in a terminal: a job started in the background inherits SIGINT ignored, which stays so."""
    prev = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for handler in (signal.default_int_handler, signal.SIG_IGN):
            signal.signal(signal.SIGINT, handler)
            with gemma8.Model(demo, threads=1) as m:
                assert "".join(m.generate("Hi", temperature=0, max_tokens=3))
            assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, prev)


NO_NUMPY = """
import sys
sys.modules["numpy"] = None  # as if numpy were not installed
import gemma8
m = gemma8.Model(sys.argv[1], threads=1)
rows = m.logits([2, 651, 6037])
print(type(rows).__name__, len(rows), type(rows[0]).__name__, len(rows[0]))
"""


def test_logits_without_numpy_are_lists(demo):
    r = subprocess.run([sys.executable, "-c", NO_NUMPY, demo], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["list", "3", "list", "256000"]
    with gemma8.Model(demo, threads=1) as m:
        arr = m.logits([2, 651, 6037])
        assert arr.dtype.name == "float32" and arr.shape == (3, 256000)


def test_an_installed_library_found_by_pkg_config(tmp_path):
    """Outside a checkout, `pip install` of the package uses the libgemma8 that pkg-config finds
    (here one installed by `make install` under a prefix of its own) and holds no copy of it."""
    prefix = tmp_path / "prefix"
    r = subprocess.run(
        ["make", "-C", str(REPO), "install", f"PREFIX={prefix}"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    src = tmp_path / "gemma8-python"
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests", "libgemma8.so*")
    shutil.copytree(REPO / "python", src, ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k != "GEMMA8_LIBRARY"}
    env["PKG_CONFIG_PATH"] = str(prefix / "lib" / "pkgconfig")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    r = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(src)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    show = (
        "import gemma8, gemma8._lib as l, pathlib; print(l.lib._name); print(gemma8.__version__); "
        "print(len(list(pathlib.Path(gemma8.__file__).parent.glob('libgemma8.so*'))))"
    )
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-c", show], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    path, version, copies = r.stdout.split()
    assert path == str(prefix / "lib" / "libgemma8.so") and version == gemma8.__version__ and copies == "0"
    import ctypes.util

    if ctypes.util.find_library("gemma8") is None:  # none on the system: without pkg-config's, none at all
        env.pop("PKG_CONFIG_PATH")
        r = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import gemma8"],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert r.returncode != 0 and "no usable libgemma8.so" in r.stderr
