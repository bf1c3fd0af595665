"""OpenAI-shaped results, with llama-cpp-python's names and arguments: create_completion,
create_chat_completion (response_format, grammar, tools) and create_embedding. An argument this
engine cannot honour raises ValueError naming it, never ignored."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Iterator, Optional, Sequence, Union

from ._lib import TOOL_CALL_OPEN
from .grammar import Grammar

FINISH = {"eog": "stop", "stop": "stop", "length": "length", "context": "length", "callback": "stop"}

# llama-cpp-python's arguments this engine has no use for, and the value that means "off"
_OFF = {
    "typical_p": 1.0,
    "tfs_z": 1.0,
    "logprobs": None,
    "top_logprobs": None,
    "logits_processor": None,
    "stopping_criteria": None,
    "suffix": None,
    "functions": None,
    "function_call": None,
}


def _refuse_unsupported(kwargs: dict, allowed: set) -> None:
    for k, v in kwargs.items():
        if k in _OFF:
            if v not in (_OFF[k], None, False):
                raise ValueError(f"{k!r} is not supported by gemma8")
        elif k not in allowed:
            raise TypeError(f"unexpected argument {k!r}")


def _sampling(kw: dict, defaults: dict) -> dict:
    """generate()'s arguments from OpenAI's / llama-cpp-python's."""
    out = {k: kw.get(k, d) for k, d in defaults.items()}
    for k in (
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "repeat_penalty",
        "frequency_penalty",
        "presence_penalty",
    ):
        if out.get(k) is None:
            out[k] = defaults[k]
    if kw.get("max_tokens") is None:
        out["max_tokens"] = defaults["max_tokens"]
    return out


_CHAT_DEFAULTS = dict(
    temperature=0.2,
    top_p=0.95,
    top_k=40,
    min_p=0.05,
    repeat_penalty=1.0,
    frequency_penalty=0.0,
    presence_penalty=0.0,
    mirostat_mode=0,
    mirostat_tau=5.0,
    mirostat_eta=0.1,
    seed=None,
    stop=None,
    logit_bias=None,
    max_tokens=None,
    grammar=None,
)
_COMPLETION_DEFAULTS = dict(_CHAT_DEFAULTS, temperature=0.8, max_tokens=16)


def _generate_args(model: Any, kw: dict, defaults: dict) -> dict:
    a = _sampling(kw, defaults)
    if a["max_tokens"] is None or a["max_tokens"] <= 0:  # none: up to the context's end
        a["max_tokens"] = model.n_ctx
    if a["mirostat_mode"] not in (0, 1, 2):
        raise ValueError("mirostat_mode must be 0, 1 or 2")
    if a["logit_bias"]:
        a["logit_bias"] = {int(k): v for k, v in a["logit_bias"].items()}
    if isinstance(a["stop"], str):
        a["stop"] = [a["stop"]]
    return a


def _response_grammar(fmt: Optional[dict]) -> Optional[Grammar]:
    """response_format: {"type": "text"}, {"type": "json_object"[, "schema": ...]} (llama-cpp-python's)
    or {"type": "json_schema", "json_schema": {"schema": ...}} (OpenAI's)."""
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return Grammar.from_json_schema(fmt.get("schema"))
    if fmt.get("type") == "json_schema":
        js = fmt.get("json_schema") or {}
        return Grammar.from_json_schema(js.get("schema", fmt.get("schema")))
    raise ValueError(
        f"response_format type must be text, json_object or json_schema, not {fmt.get('type')!r}"
    )


def _usage(model: Any) -> dict:
    r = model.last_result
    return {
        "prompt_tokens": r.n_prompt,
        "completion_tokens": r.n_generated,
        "total_tokens": r.n_prompt + r.n_generated,
    }


# ---- completions -------------------------------------------------------------------------------


def create_completion(
    model: Any,
    prompt: Union[str, Sequence[int]],
    *,
    stream: bool = False,
    echo: bool = False,
    model_name: Optional[str] = None,
    **kw: Any,
) -> Any:
    name = kw.pop("model", None) or model_name or model.model_path
    _refuse_unsupported(kw, set(_COMPLETION_DEFAULTS) | {"echo"})
    a = _generate_args(model, kw, _COMPLETION_DEFAULTS)
    ids = model._prompt_ids(prompt)
    head = (prompt if isinstance(prompt, str) else model.detokenize(ids)) if echo else ""
    cid = "cmpl-" + uuid.uuid4().hex
    created = int(time.time())
    pieces = model.generate(ids, **a)

    def chunk(text: str, finish: Optional[str]) -> dict:
        return {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": name,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        }

    if not stream:
        text = head + "".join(pieces)
        out = chunk(text, FINISH.get(model.last_result.stop_reason, "stop"))
        out["usage"] = _usage(model)
        return out

    def gen() -> Iterator[dict]:
        if head:
            yield chunk(head, None)
        for p in pieces:
            yield chunk(p, None)
        yield chunk("", FINISH.get(model.last_result.stop_reason, "stop"))

    return gen()


# ---- chat --------------------------------------------------------------------------------------


class ReplyReader:
    """A reply under tools read as it streams: text, or (if it opens with the ```tool_call block)
    the calls, each as soon as its JSON object is complete."""

    def __init__(self) -> None:
        self.mode = "undecided"
        self.buf = ""
        self.calls: list[dict] = []

    def feed(self, piece: str) -> tuple[str, list[dict]]:
        """Text to pass on and calls completed by this piece."""
        if self.mode == "text":
            return piece, []
        self.buf += piece
        if self.mode == "undecided":
            k = min(len(self.buf), len(TOOL_CALL_OPEN))
            if self.buf[:k] != TOOL_CALL_OPEN[:k]:
                self.mode = "text"
                text, self.buf = self.buf, ""
                return text, []
            if len(self.buf) < len(TOOL_CALL_OPEN):
                return "", []
            self.mode = "calls"
            self.buf = self.buf[len(TOOL_CALL_OPEN) :]
        new = []
        dec = json.JSONDecoder()
        while self.mode == "calls":
            rest = self.buf.lstrip("\n")
            if rest.startswith("`"):
                self.mode = "closed"
                break
            try:
                obj, end = dec.raw_decode(rest)
            except ValueError:
                break  # not complete yet
            self.buf = rest[end:]
            if isinstance(obj, dict):
                new.append(obj)
        self.calls += new
        return "", new

    def end(self) -> str:
        """What was held back, if the reply ended before it was decided."""
        return self.buf if self.mode == "undecided" else ""


def _tool_call(call: dict) -> dict:
    args = call.get("arguments", {})
    return {
        "id": "call_" + uuid.uuid4().hex[:24],
        "type": "function",
        "function": {"name": call.get("name", ""), "arguments": json.dumps(args, ensure_ascii=False)},
    }


def _tools_choice(tool_choice: Any) -> tuple[str, Optional[str]]:
    if tool_choice is None or tool_choice == "auto":
        return "auto", None
    if tool_choice in ("none", "required"):
        return tool_choice, None
    if isinstance(tool_choice, dict) and isinstance((tool_choice.get("function") or {}).get("name"), str):
        return "required", tool_choice["function"]["name"]
    raise ValueError("tool_choice must be auto, none, required or {type: function, function: {name}}")


def create_chat_completion(
    model: Any,
    messages: Sequence[dict],
    *,
    stream: bool = False,
    response_format: Optional[dict] = None,
    tools: Optional[Sequence[dict]] = None,
    tool_choice: Any = None,
    parallel_tool_calls: bool = True,
    **kw: Any,
) -> Any:
    name = kw.pop("model", None) or model.model_path
    _refuse_unsupported(kw, set(_CHAT_DEFAULTS))
    a = _generate_args(model, kw, _CHAT_DEFAULTS)
    fmt = _response_grammar(response_format)
    if fmt is not None and a["grammar"] is not None:
        raise ValueError("give response_format or grammar, not both")
    a["grammar"] = fmt if fmt is not None else a["grammar"]
    if tools:
        if a["grammar"] is not None:
            raise ValueError("a response format or grammar cannot be combined with tools")
        choice, only = _tools_choice(tool_choice)
        a["grammar"] = Grammar.from_tools(tools, choice, only, parallel_tool_calls)
    elif tool_choice not in (None, "auto", "none"):
        raise ValueError("'tool_choice' asks for a call, but no tools were given")
    pieces = model.generate(model.chat_tokens(messages, tools), **a)
    cid = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    reader = ReplyReader() if tools else None

    if not stream:
        text = "".join(pieces)
        calls: list[dict] = []
        if reader:
            text, _ = reader.feed(text)
            text += reader.end()
            calls = [_tool_call(c) for c in reader.calls]
        msg: dict = {"role": "assistant", "content": text if not calls else (text or None)}
        if calls:
            msg["tool_calls"] = calls
        finish = "tool_calls" if calls else FINISH.get(model.last_result.stop_reason, "stop")
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": finish}],
            "usage": _usage(model),
        }

    def chunk(delta: dict, finish: Optional[str]) -> dict:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": name,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def gen() -> Iterator[dict]:
        yield chunk({"role": "assistant", "content": ""}, None)
        n_calls = 0
        for p in pieces:
            text, new = reader.feed(p) if reader else (p, [])
            if text:
                yield chunk({"content": text}, None)
            for c in new:
                call = _tool_call(c)
                call["index"] = n_calls
                n_calls += 1
                yield chunk({"tool_calls": [call]}, None)
        rest = reader.end() if reader else ""
        if rest:
            yield chunk({"content": rest}, None)
        yield chunk({}, "tool_calls" if n_calls else FINISH.get(model.last_result.stop_reason, "stop"))

    return gen()


# ---- embeddings --------------------------------------------------------------------------------


def create_embedding(model: Any, input: Union[str, Sequence[str]], name: Optional[str] = None) -> dict:
    texts = [input] if isinstance(input, str) else list(input)
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise ValueError("input must be a non-empty string or a list of non-empty strings")
    data, n_tokens = [], 0
    for i, t in enumerate(texts):
        ids = model.tokenize(t, add_bos=True, special=True)
        n_tokens += len(ids)
        data.append({"object": "embedding", "embedding": model._embed_ids(ids), "index": i})
    return {
        "object": "list",
        "data": data,
        "model": name or model.model_path,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }
