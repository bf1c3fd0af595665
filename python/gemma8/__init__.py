"""gemma8 from Python: Gemma 2 and Gemma 3 on the CPU through libgemma8 (ctypes).

import gemma8
model = gemma8.Model("gemma-3-1b-it.gguf")
print(model.chat([{"role": "user", "content": "Why is the sky blue?"}]))
"""

from ._lib import lib as _lib_handle
from .convert import convert, convert_lora, convert_random, quantize
from .errors import (
    Aborted,
    ContextFullError,
    FormatError,
    Gemma8Error,
    Gemma8IOError,
    InvalidArgumentError,
    OutOfMemoryError,
    UnsupportedError,
)
from .grammar import Grammar, tools_prompt
from .model import GenerationResult, Model, ModelInfo

__version__ = _lib_handle.gemma8_version().decode()

__all__ = [
    "Aborted",
    "ContextFullError",
    "FormatError",
    "Gemma8Error",
    "Gemma8IOError",
    "GenerationResult",
    "Grammar",
    "InvalidArgumentError",
    "Model",
    "ModelInfo",
    "OutOfMemoryError",
    "UnsupportedError",
    "convert",
    "convert_lora",
    "convert_random",
    "quantize",
    "tools_prompt",
    "__version__",
]
