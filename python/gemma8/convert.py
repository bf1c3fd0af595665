"""Conversion: Hugging Face checkpoints and PEFT adapters to GGUF, and re-quantization."""

from __future__ import annotations

import ctypes
import os
from typing import Callable, Optional, Union

from . import _lib
from ._lib import lib
from .errors import check
from .model import _type_code

Path = Union[str, os.PathLike]
Progress = Callable[[str, int, int], Optional[bool]]


def _params(
    type: str,
    output_type: Optional[str],
    lora: Optional[Path],
    lora_scale: float,
    progress: Optional[Progress],
) -> _lib.ConvertParams:
    p = lib.gemma8_convert_default_params()
    p.type = _type_code(type)
    p.output_type = -1 if output_type is None else _type_code(output_type)
    if lora is not None:
        p.lora = os.fspath(lora).encode()
        p.lora_scale = lora_scale
    if progress is not None:

        def call(what: bytes, done: int, total: int, _ud: object) -> bool:
            return progress(what.decode(), done, total) is not False

        p.progress = _lib.progress_fn(call)
        p._keep = p.progress  # type: ignore[attr-defined]
    return p


def convert(
    hf_dir: Path,
    out_path: Path,
    *,
    type: str = "q8_0",
    output_type: Optional[str] = None,
    lora: Optional[Path] = None,
    lora_scale: float = 1.0,
    progress: Optional[Progress] = None,
) -> None:
    """A Hugging Face Gemma 2 / Gemma 3 checkpoint folder to one GGUF file (llama.cpp's layout), as
    `gemma8 convert`: type f32, f16, bf16, q8_0 (default) or q4_0; output_type the embedding's
    (default: q8_0 for q4_0, else type); lora: a PEFT adapter merged first. progress(what, done,
    total) may return False to cancel. The file appears only when complete."""
    p = _params(type, output_type, lora, lora_scale, progress)
    check(lib.gemma8_convert_hf(os.fspath(hf_dir).encode(), os.fspath(out_path).encode(), ctypes.byref(p)))


def quantize(
    in_path: Path,
    out_path: Path,
    *,
    type: str = "q4_0",
    output_type: Optional[str] = None,
    progress: Optional[Progress] = None,
) -> None:
    """A GGUF model re-quantized to type, as llama.cpp's llama-quantize (`gemma8 quantize`)."""
    p = _params(type, output_type, None, 1.0, progress)
    check(lib.gemma8_quantize(os.fspath(in_path).encode(), os.fspath(out_path).encode(), ctypes.byref(p)))


def convert_lora(peft_dir: Path, out_path: Path) -> None:
    """A PEFT adapter folder to a LoRA GGUF file in llama.cpp's layout (`gemma8 convert-lora`)."""
    check(lib.gemma8_lora_convert(os.fspath(peft_dir).encode(), os.fspath(out_path).encode()))


def convert_random(
    config_path: Path, out_path: Path, *, tokenizer_dir: Optional[Path] = None, type: str = "q8_0"
) -> None:
    """A random-weight model of a Hugging Face config.json's shape (for benchmarks and tests), with
    the tokenizer of tokenizer_dir if given."""
    p = _params(type, None, None, 1.0, None)
    tok = os.fspath(tokenizer_dir).encode() if tokenizer_dir is not None else None
    check(
        lib.gemma8_convert_random(
            os.fspath(config_path).encode(), tok, os.fspath(out_path).encode(), ctypes.byref(p)
        )
    )
