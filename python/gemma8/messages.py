"""Conversations as OpenAI clients write them, made into the turns Gemma's template renders, by the
rules `gemma8 serve` applies (so a conversation gives the same prompt here and there):

- roles: system (or developer), user, assistant (or model), tool;
- content: a string, None, or a list of {"type": "text", "text": ...} parts;
- a system message after the first turn is read as user text, and consecutive messages of one
  role become one, their texts joined by a blank line;
- an assistant's tool calls are written after its text as a ```tool_call block, a tool's result
  as a ```tool_output block in the user's turn (gemma8.h's format);
- a last assistant message is a prefill: the reply continues it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from ._lib import TOOL_BLOCK_CLOSE, TOOL_CALL_OPEN, TOOL_OUTPUT_OPEN

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "model": "assistant",
    "tool": "tool",
}


@dataclass
class Turn:
    role: str  # "system", "user" or "assistant"
    content: str = ""
    parts: Optional[list[str]] = None  # text parts, used instead of content (the template joins them)

    def text(self) -> str:
        return "".join(self.parts) if self.parts is not None else self.content


@dataclass
class Conversation:
    turns: list[Turn] = field(default_factory=list)
    prefill: Optional[str] = None  # a last assistant message, continued by the reply


def _content(i: int, content: Any) -> Turn:
    if content is None:
        return Turn("", "")
    if isinstance(content, str):
        return Turn("", content)
    if not isinstance(content, list):
        raise ValueError(f"message {i}: content must be a string or a list of text parts")
    parts = []
    for p in content:
        if not isinstance(p, dict) or p.get("type") != "text" or not isinstance(p.get("text"), str):
            raise ValueError(f'message {i}: only content parts of type "text" are supported')
        parts.append(p["text"])
    return Turn("", "", parts)


def _calls_text(i: int, text: str, calls: Sequence[dict]) -> str:
    lines = []
    for k, c in enumerate(calls):
        fn = c.get("function", c) if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ValueError(f"message {i}: tool call {k} has no function name")
        args = fn.get("arguments")
        if isinstance(args, str):  # OpenAI's arguments are JSON text
            try:
                args = json.loads(args)
            except ValueError:
                args = {}
        if args is None or isinstance(args, str):
            args = {}
        lines.append(
            json.dumps({"name": fn["name"], "arguments": args}, ensure_ascii=False, separators=(",", ":"))
        )
    block = TOOL_CALL_OPEN + "\n".join(lines) + TOOL_BLOCK_CLOSE
    return (text + "\n\n" + block) if text else block


def _result_name(messages: Sequence[dict], i: int) -> Optional[str]:
    msg = messages[i]
    for key in ("name", "tool_name"):
        if isinstance(msg.get(key), str):
            return msg[key]
    want = msg.get("tool_call_id")
    for m in messages[:i]:
        for c in m.get("tool_calls") or []:
            if isinstance(c, dict) and c.get("id") == want and isinstance(c.get("function"), dict):
                return c["function"].get("name")
    return None


def _result_text(name: Optional[str], content: str) -> str:
    o = {"name": name, "content": content} if name is not None else {"content": content}
    return TOOL_OUTPUT_OPEN + json.dumps(o, ensure_ascii=False, separators=(",", ":")) + TOOL_BLOCK_CLOSE


def conversation(messages: Sequence[dict], system: Optional[str] = None) -> Conversation:
    """The turns of messages (system: text put before them, as a system message: tool instructions)."""
    if not isinstance(messages, (list, tuple)):
        raise TypeError("messages must be a list of dicts")
    turns = [Turn("system", system)] if system else []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ValueError(f"message {i} has no 'role'")
        role = ROLES.get(m["role"])
        if role is None:
            raise ValueError(
                f"message {i}: unknown role {m['role']!r} (system, developer, user, assistant, tool)"
            )
        if m.get("images"):
            raise ValueError(f"message {i}: images are not supported (gemma8 reads text only)")
        t = _content(i, m.get("content"))
        calls = m.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise ValueError(f"message {i}: 'tool_calls' must be a list")
        if calls and role != "assistant":
            raise ValueError(f"message {i}: only an assistant message has tool calls")
        if calls:
            t = Turn("", _calls_text(i, t.text(), calls))
        elif role == "tool":
            t = Turn("", _result_text(_result_name(messages, i), t.text()))
        t.role = "user" if role == "tool" else role
        turns.append(t)
    if len(turns) >= 2 and turns[-1].role == turns[-2].role == "assistant":
        raise ValueError(
            "the last two messages are the assistant's: a prefill is one assistant message at the end"
        )
    merged: list[Turn] = []
    for t in turns:
        if merged and t.role == "system" and merged[-1].role != "system":
            t.role = "user"
        if merged and merged[-1].role == t.role:
            merged[-1] = Turn(t.role, merged[-1].text() + "\n\n" + t.text())
        else:
            merged.append(t)
    conv = Conversation(merged)
    if len(merged) > 1 and merged[-1].role == "assistant":
        last = conv.turns.pop()
        conv.prefill = "\n\n".join(last.parts) if last.parts is not None else last.content
    return conv
