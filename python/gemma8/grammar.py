"""Constrained output: llama.cpp's GBNF, a JSON Schema, or a set of tools, compiled by the library."""

from __future__ import annotations

import ctypes
import json
from typing import Any, Optional, Sequence

from . import _lib
from ._lib import lib
from .errors import check


class Grammar:
    """A compiled grammar. Read-only once made: one Grammar may constrain any number of
    generations, in any number of threads."""

    def __init__(self, handle: ctypes.c_void_p):
        self._h = handle

    @classmethod
    def from_gbnf(cls, gbnf: str) -> "Grammar":
        """llama.cpp's GBNF (start rule ``root``); a bad grammar raises, naming the line or rule."""
        h = ctypes.c_void_p()
        check(lib.gemma8_grammar_from_gbnf(gbnf.encode(), ctypes.byref(h)))
        return cls(h)

    @classmethod
    def from_json_schema(cls, schema: Any = None) -> "Grammar":
        """Replies that are JSON valid against ``schema`` (a dict or its JSON text); None: any JSON
        object. A keyword the engine cannot enforce raises, naming it."""
        h = ctypes.c_void_p()
        text = None if schema is None else (schema if isinstance(schema, str) else json.dumps(schema))
        check(lib.gemma8_grammar_from_json_schema(None if text is None else text.encode(), ctypes.byref(h)))
        return cls(h)

    @classmethod
    def from_tools(
        cls, tools: Sequence[dict], choice: str = "auto", only: Optional[str] = None, parallel: bool = True
    ) -> "Grammar":
        """A reply under tools (gemma8.h's format): text, or a block of calls whose arguments follow
        each tool's schema. choice: "auto", "none" or "required"; only: a function forced by name."""
        arr = _tool_array(tools)
        codes = {"auto": _lib.TOOLS_AUTO, "none": _lib.TOOLS_NONE, "required": _lib.TOOLS_REQUIRED}
        if choice not in codes:
            raise ValueError(f"tool choice must be auto, none or required, not {choice!r}")
        h = ctypes.c_void_p()
        only_b = only.encode() if only else None
        check(
            lib.gemma8_grammar_from_tools(arr, len(tools), codes[choice], only_b, parallel, ctypes.byref(h))
        )
        return cls(h)

    @property
    def gbnf(self) -> str:
        """The grammar as GBNF (a schema's translation)."""
        return lib.gemma8_grammar_gbnf(self._h).decode()

    @property
    def warnings(self) -> Optional[str]:
        """What of a schema could not be enforced (lines), or None."""
        w = lib.gemma8_grammar_warnings(self._h)
        return w.decode() if w else None

    def __del__(self) -> None:
        if getattr(self, "_h", None):
            lib.gemma8_grammar_free(self._h)
            self._h = None


def _tool_array(tools: Sequence[dict]) -> ctypes.Array:
    """OpenAI's tools ({"type": "function", "function": {name, description, parameters}}, or the
    fields at the top) as the library's array; the strings are kept alive by the array."""
    arr = (_lib.Tool * max(1, len(tools)))()
    keep = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict):
            raise TypeError(f"tool {i} must be a dict")
        if t.get("type", "function") != "function":
            raise ValueError(f"tool {i}: only function tools are supported, not {t.get('type')!r}")
        fn = t.get("function", t)
        name = fn.get("name")
        if not isinstance(name, str):
            raise ValueError(f"tool {i} has no function name")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"tool {name!r}: 'parameters' must be a dict (a JSON Schema)")
        desc = fn.get("description")
        fields = [name.encode(), desc.encode() if isinstance(desc, str) else None]
        fields.append(json.dumps(params).encode() if params is not None else None)
        keep.append(fields)
        arr[i] = _lib.Tool(*fields)
    arr._keep = keep  # type: ignore[attr-defined]
    return arr


def tools_prompt(tools: Sequence[dict]) -> str:
    """The instructions that list the tools and the call format (they go before a system message)."""
    arr = _tool_array(tools)
    n = ctypes.c_size_t()
    st = lib.gemma8_tools_prompt(arr, len(tools), None, 0, ctypes.byref(n))
    if st != _lib.ERR_BUFFER_TOO_SMALL:
        check(st)
    buf = ctypes.create_string_buffer(n.value + 1)
    check(lib.gemma8_tools_prompt(arr, len(tools), buf, n.value + 1, ctypes.byref(n)))
    return buf.value.decode()
