"""Model: a loaded GGUF file with its context (KV cache), and the calls that run it."""

from __future__ import annotations

import ctypes
import inspect
import os
import signal
import threading
from ctypes import byref, c_bool, c_float, c_int32, c_size_t, c_uint8, c_void_p
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence, Union

from . import _lib
from ._lib import lib
from .errors import Aborted, check
from .grammar import Grammar, tools_prompt
from .messages import conversation, Conversation

Prompt = Union[str, Sequence[int]]
LoraSpec = Union[None, str, Sequence[Any], dict]


@dataclass(frozen=True)
class ModelInfo:
    """A model's hyper-parameters (gemma8_model_info)."""

    arch: str
    name: str
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_ctx_train: int
    sliding_window: int
    n_layer_sliding: int
    rope_base: float
    rope_base_local: float
    rope_scale: float
    query_pre_attn_scalar: float
    attn_softcap: float
    final_softcap: float
    rms_eps: float
    qk_norm: bool
    matrix_type: str
    n_params: int
    weight_bytes: int


@dataclass(frozen=True)
class GenerationResult:
    """How the last generation of a Model went (gemma8_generate_result)."""

    n_prompt: int
    n_reused: int  # prompt tokens already in the cache, not evaluated again
    n_generated: int
    prompt_seconds: float
    gen_seconds: float
    stop_reason: str  # "eog", "length", "stop", "context", "aborted", ...
    stop_index: int  # stop_reason "stop": which stop string


def _ids(values: Sequence[int]) -> ctypes.Array:
    arr = (c_int32 * max(1, len(values)))()
    for i, v in enumerate(values):
        arr[i] = int(v)
    return arr


class Model:
    """A Gemma 2 or Gemma 3 model (a GGUF file: gemma8's or llama.cpp's) with a context of n_seq
    sequences. One thread uses a Model at a time (a second one gets a RuntimeError, not a wait);
    abort() may come from any thread. Two Models run at once in two threads: the library releases
    the GIL while it computes.

    lora: adapters applied to every sequence: a path, a list of paths or (path, scale) pairs, or a
    dict {path: scale} (llama.cpp LoRA GGUF files or PEFT folders). A call may name its own.
    seed: the default seed of sampling calls (None: a new random one each call).
    """

    def __init__(
        self,
        path: Union[str, os.PathLike],
        *,
        n_ctx: int = 0,
        n_batch: int = 256,
        threads: Optional[int] = None,
        n_threads: Optional[int] = None,
        n_seq: int = 1,
        kv_type: str = "auto",
        kv_unified: bool = False,
        lora: LoraSpec = None,
        seed: Optional[int] = None,
    ):
        self._model = c_void_p()
        self._ctx = c_void_p()
        self._loras: dict[str, c_void_p] = {}
        self._lock = threading.Lock()
        self._aborted = threading.Event()
        if threads is not None and n_threads is not None:
            raise ValueError("give threads or n_threads, not both")
        threads = threads if threads is not None else (n_threads or 0)
        for name, v in (("n_ctx", n_ctx), ("n_batch", n_batch), ("threads", threads), ("n_seq", n_seq)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {v!r}")
        self.model_path = os.fspath(path)
        mp = lib.gemma8_model_default_params()
        check(lib.gemma8_model_load(self.model_path.encode(), byref(mp), byref(self._model)))
        cp = lib.gemma8_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch or cp.n_batch
        cp.n_threads = threads
        cp.n_seq = n_seq or 1
        cp.kv_unified = kv_unified
        try:
            cp.kv_type = _lib.KV_AUTO if kv_type == "auto" else _type_code(kv_type)
            check(lib.gemma8_context_new(self._model, byref(cp), byref(self._ctx)))
            self.info = _model_info(lib.gemma8_model_get_info(self._model))
            self.seed = seed
            self.last_result: Optional[GenerationResult] = None
            self.last_tokens: list[int] = []  # the ids the last generation produced
            self._default_lora = self._lora_set(lora)
            self._seq_lora: dict[int, tuple] = {}
        except BaseException:
            self.close()
            raise

    # ---- life -----------------------------------------------------------------------------

    def close(self) -> None:
        """Frees the context, the adapters and the model (also done when the Model is collected).
        Refused (RuntimeError) while a call or a generation's iterator is using the Model."""
        lock = getattr(self, "_lock", None)
        if lock is not None and not lock.acquire(blocking=False):
            raise RuntimeError("this Model is busy: it cannot be closed while a call uses it")
        try:
            self._free()
        finally:
            if lock is not None:
                lock.release()

    def _free(self) -> None:
        if getattr(self, "_ctx", None):
            lib.gemma8_context_free(self._ctx)
            self._ctx = c_void_p()
        for h in getattr(self, "_loras", {}).values():
            lib.gemma8_lora_free(h)
        self._loras = {}
        if getattr(self, "_model", None):
            lib.gemma8_model_free(self._model)
            self._model = c_void_p()

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _busy(self) -> "_Busy":
        return _Busy(self._lock) if self._open() else None

    def _open(self) -> bool:
        if not self._ctx:
            raise ValueError("this Model is closed")
        return True

    @property
    def n_ctx(self) -> int:
        """Positions each sequence may hold."""
        return lib.gemma8_n_ctx(self._ctx) if self._open() else 0

    @property
    def n_seq(self) -> int:
        return lib.gemma8_n_seq(self._ctx) if self._open() else 0

    def n_past(self, seq: int = 0) -> int:
        """Tokens in the cache of sequence seq."""
        return lib.gemma8_seq_n_past(self._ctx, seq) if self._open() else 0

    def reset(self, seq: Optional[int] = None) -> None:
        """Forgets the cache of one sequence (None: of all)."""
        with self._busy():
            for s in range(self.n_seq) if seq is None else [self._check_seq(seq)]:
                lib.gemma8_seq_clear(self._ctx, s)

    def abort(self) -> None:
        """Stops the generation running on this Model (from any thread): it raises gemma8.Aborted
        within one layer of the forward pass, and the Model stays usable. An abort while nothing
        runs is forgotten."""
        self._aborted.set()
        if self._ctx:
            lib.gemma8_abort(self._ctx)

    def _check_seq(self, seq: int) -> int:
        if not isinstance(seq, int) or not 0 <= seq < self.n_seq:
            raise ValueError(f"seq must be a sequence of this context, 0..{self.n_seq - 1}, not {seq!r}")
        return seq

    # ---- tokens ---------------------------------------------------------------------------

    def tokenize(self, text: Union[str, bytes], add_bos: bool = True, special: bool = False) -> list[int]:
        """Token ids of text, exactly as Hugging Face's tokenizer gives them. special: control-token
        text such as "<start_of_turn>" is recognised (keep it off for untrusted text)."""
        self._open()
        data = text.encode() if isinstance(text, str) else bytes(text)
        n = c_int32()
        cap = len(data) + 2
        out = (c_int32 * cap)()
        st = lib.gemma8_tokenize(self._model, data, len(data), add_bos, special, out, cap, byref(n))
        if st == _lib.ERR_BUFFER_TOO_SMALL:
            cap = n.value
            out = (c_int32 * cap)()
            st = lib.gemma8_tokenize(self._model, data, len(data), add_bos, special, out, cap, byref(n))
        check(st)
        return list(out[: n.value])

    def detokenize(self, ids: Sequence[int], skip_special: bool = False) -> str:
        """The text of token ids (byte pieces fused, invalid UTF-8 runs as U+FFFD)."""
        self._open()
        arr = self._checked_ids(ids)
        cap = 16 * len(ids) + 16
        while True:
            buf = ctypes.create_string_buffer(cap + 1)
            n = c_size_t()
            st = lib.gemma8_detokenize(self._model, arr, len(ids), skip_special, buf, cap + 1, byref(n))
            if st != _lib.ERR_BUFFER_TOO_SMALL:
                check(st)
                return buf.raw[: n.value].decode("utf-8", "replace")
            cap = max(n.value, 2 * cap)

    def _checked_ids(self, ids: Sequence[int]) -> ctypes.Array:
        for i, t in enumerate(ids):
            if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < self.info.n_vocab:
                raise ValueError(
                    f"token {i} ({t!r}) is not an id of this model's vocabulary "
                    f"(0..{self.info.n_vocab - 1})"
                )
        return _ids(ids)

    def _prompt_ids(self, prompt: Prompt, special: bool = True) -> list[int]:
        if isinstance(prompt, (str, bytes)):
            return self.tokenize(prompt, add_bos=True, special=special)
        ids = list(prompt)
        self._checked_ids(ids)
        return ids

    def chat_tokens(self, messages: Sequence[dict], tools: Optional[Sequence[dict]] = None) -> list[int]:
        """The prompt of a conversation in the model's chat template, ending with the model's turn
        (or continuing a last assistant message); with tools, their instructions go first, as a
        system message (what `gemma8 serve` renders for the same request)."""
        return self._conversation_ids(conversation(messages, tools_prompt(tools) if tools else None))

    def _conversation_ids(self, conv: Conversation) -> list[int]:
        self._open()
        arr = (_lib.ChatMessage * max(1, len(conv.turns)))()
        keep = []
        for i, t in enumerate(conv.turns):
            m = _lib.ChatMessage(t.role.encode(), t.content.encode(), None, 0)
            if t.parts is not None:
                parts = (ctypes.c_char_p * max(1, len(t.parts)))(*[p.encode() for p in t.parts])
                keep.append(parts)
                m.parts = parts
                m.n_parts = len(t.parts)
            arr[i] = m
        cap = 4096
        while True:
            out = (c_int32 * cap)()
            n = c_int32()
            st = lib.gemma8_chat_tokenize(self._model, arr, len(conv.turns), True, out, cap, byref(n))
            if st != _lib.ERR_BUFFER_TOO_SMALL:
                break
            cap = n.value
        check(st)
        ids = list(out[: n.value])
        if conv.prefill:
            ids += self.tokenize(conv.prefill, add_bos=False)
        return ids

    # ---- LoRA -----------------------------------------------------------------------------

    def _adapter(self, path: Union[str, os.PathLike]) -> c_void_p:
        key = os.fspath(path)
        if key not in self._loras:
            h = c_void_p()
            check(lib.gemma8_lora_load(self._model, key.encode(), byref(h)))
            self._loras[key] = h
        return self._loras[key]

    def _lora_set(self, spec: LoraSpec) -> tuple:
        """((adapter handle, scale), ...) of a LoRA argument."""
        if spec is None:
            return ()
        if isinstance(spec, (str, os.PathLike)):
            spec = [(spec, 1.0)]
        elif isinstance(spec, dict):
            spec = list(spec.items())
        pairs = []
        for item in spec:
            path, scale = (item, 1.0) if isinstance(item, (str, os.PathLike)) else item
            pairs.append((self._adapter(path), float(scale)))
        if len(pairs) > _lib.MAX_LORA:
            raise ValueError(f"at most {_lib.MAX_LORA} adapters at once, not {len(pairs)}")
        return tuple(pairs)

    def _use_lora(self, seq: int, spec: LoraSpec) -> None:
        pairs = self._default_lora if spec is None else self._lora_set(spec)
        key = tuple((h.value, s) for h, s in pairs)
        if self._seq_lora.get(seq, ()) == key:
            return
        handles = (c_void_p * max(1, len(pairs)))(*[h.value for h, _ in pairs])
        scales = (c_float * max(1, len(pairs)))(*[s for _, s in pairs])
        check(lib.gemma8_seq_set_lora(self._ctx, seq, handles, scales, len(pairs)))
        self._seq_lora[seq] = key

    # ---- generation -----------------------------------------------------------------------

    def generate(
        self,
        prompt: Prompt,
        *,
        max_tokens: int = 256,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.9,
        min_p: float = 0.0,
        repeat_penalty: Optional[float] = None,
        repeat_last_n: int = 64,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        seed: Optional[int] = None,
        stop: Union[None, str, Sequence[str]] = None,
        logit_bias: Optional[dict] = None,
        ignore_eos: bool = False,
        grammar: Union[None, str, Grammar] = None,
        json_schema: Any = None,
        lora: LoraSpec = None,
        seq: int = 0,
    ) -> Iterator[str]:
        """Generates after prompt (text, tokenized with <bos> and control tokens recognised, as
        llama-server's /completion; or token ids) and yields the text as it comes, in pieces of
        complete UTF-8. Sampling defaults are the CLI's (`gemma8 run`): temperature 0 is greedy and
        then turns the repeat penalty off unless given. grammar: GBNF text or a Grammar;
        json_schema: a dict (or True: any JSON object). The sequence keeps its cache: a prompt
        that continues it is evaluated only past what it shares. After the iterator ends,
        last_result says why it stopped. Ctrl-C raises KeyboardInterrupt between steps and leaves
        the Model usable (see _Interrupt)."""
        ids = self._prompt_ids(prompt)
        gp = self._params(locals())
        return self._run(ids, gp, seq, lora)

    def chat(
        self,
        messages: Sequence[dict],
        *,
        stream: bool = False,
        **kwargs: Any,
    ) -> Union[str, Iterator[str]]:
        """The reply to a conversation (OpenAI-style messages) in the model's chat template: the
        text, or with stream=True an iterator of its pieces. Takes generate()'s arguments. (Tool
        calls: create_chat_completion.)"""
        pieces = self.generate(self.chat_tokens(messages), **kwargs)
        return pieces if stream else "".join(pieces)

    def _params(self, a: dict) -> "_lib.GenerateParams":
        gp = lib.gemma8_generate_default_params()
        if not isinstance(a["max_tokens"], int) or a["max_tokens"] < 1:
            raise ValueError(f"max_tokens must be a positive integer, not {a['max_tokens']!r}")
        gp.max_new_tokens = a["max_tokens"]
        gp.ignore_eos = bool(a["ignore_eos"])
        s = gp.sampling
        s.temperature = a["temperature"]
        s.top_k = a["top_k"]
        s.top_p = a["top_p"]
        s.min_p = a["min_p"]
        rp = a["repeat_penalty"]
        s.repeat_penalty = rp if rp is not None else (1.0 if a["temperature"] == 0 else s.repeat_penalty)
        s.repeat_last_n = a["repeat_last_n"]
        s.frequency_penalty = a["frequency_penalty"]
        s.presence_penalty = a["presence_penalty"]
        s.mirostat = a["mirostat_mode"]
        s.mirostat_tau = a["mirostat_tau"]
        s.mirostat_eta = a["mirostat_eta"]
        seed = a["seed"] if a["seed"] is not None else self.seed
        s.seed = (seed if seed is not None else int.from_bytes(os.urandom(4), "little")) & 0xFFFFFFFF
        keep = []
        if a["logit_bias"]:
            lb = (_lib.LogitBias * len(a["logit_bias"]))()
            for i, (tok, bias) in enumerate(a["logit_bias"].items()):
                tok = int(tok)
                if not 0 <= tok < self.info.n_vocab:
                    raise ValueError(f"logit_bias: {tok} is not a token id of this model")
                lb[i] = _lib.LogitBias(tok, float("-inf") if bias is None else float(bias))
            s.logit_bias = lb
            s.n_logit_bias = len(lb)
            keep.append(lb)
        stop = a["stop"]
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if stops:
            arr = (ctypes.c_char_p * len(stops))(*[x.encode() for x in stops])
            gp.stop = arr
            gp.n_stop = len(stops)
            keep.append(arr)
        g = a["grammar"]
        if a["json_schema"] is not None:
            if g is not None:
                raise ValueError("give grammar or json_schema, not both")
            g = Grammar.from_json_schema(None if a["json_schema"] is True else a["json_schema"])
        elif isinstance(g, str):
            g = Grammar.from_gbnf(g)
        if g is not None:
            gp.grammar = g._h
            keep.append(g)
        gp.seq = self._check_seq(a["seq"])
        gp._keep = keep  # alive as long as the params
        return gp

    def _run(self, ids: list[int], gp: "_lib.GenerateParams", seq: int, lora: LoraSpec) -> Iterator[str]:
        busy = self._busy().__enter__()  # taken now: a second caller is told at once, not at next()
        try:
            self._use_lora(seq, lora)
        except BaseException:
            busy.__exit__()
            raise
        return _Stream(self._steps(busy, ids, gp), busy)

    def _steps(self, busy: "_Busy", ids: list[int], gp: "_lib.GenerateParams") -> Iterator[str]:
        pieces: list[bytes] = []
        failure: list[BaseException] = []

        tokens: list[int] = []
        self.last_tokens = tokens

        def on_token(token: int, text: Any, n: int, state: int, _ud: Any) -> bool:
            try:
                if token >= 0:
                    tokens.append(token)
                if state == _lib.RUN_NORMAL and n:
                    pieces.append(ctypes.string_at(text, n))
                return True
            except BaseException as e:  # an exception cannot cross the library: raised after the step
                failure.append(e)
                return False

        cb = _lib.token_fn(on_token)
        gp.on_token = cb
        arr = _ids(ids)
        gen = c_void_p()
        done = c_bool(False)
        try:
            self._aborted.clear()
            check(lib.gemma8_gen_begin(self._ctx, arr, len(ids), byref(gp), byref(gen)))
            while not done.value:
                if self._aborted.is_set():
                    raise Aborted(_lib.ERR_ABORTED, "generation aborted")
                with _Interrupt(self._ctx):
                    st = lib.gemma8_gen_step(gen, byref(done))
                    if failure:
                        raise failure[0]
                    check(st)
                for p in pieces:
                    yield p.decode("utf-8", "replace")
                pieces.clear()
        finally:
            if gen:
                r = _lib.GenerateResult()
                lib.gemma8_gen_end(gen, byref(r))
                self.last_result = _result(r)
            busy.__exit__()

    def generate_batch(self, prompts: Sequence[Prompt], **kwargs: Any) -> list[str]:
        """Several prompts generated together, one per sequence (0, 1, ...), each step one forward
        pass for all of them: every reply is bit-identical to generating it alone with the same
        arguments. Takes generate()'s arguments but seq."""
        if "seq" in kwargs:
            raise ValueError("generate_batch puts prompt i on sequence i: no seq argument")
        if len(prompts) > self.n_seq:
            raise ValueError(f"{len(prompts)} prompts but the context has {self.n_seq} sequences (n_seq)")
        lora = kwargs.pop("lora", None)
        defaults = {
            name: p.default
            for name, p in inspect.signature(Model.generate).parameters.items()
            if p.kind == p.KEYWORD_ONLY and name not in ("seq", "lora")
        }
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f"generate_batch: unknown arguments {sorted(unknown)}")
        ids = [self._prompt_ids(p) for p in prompts]
        with self._busy():
            texts: list[list[bytes]] = [[] for _ in prompts]
            gps, cbs, arrs = [], [], []
            gens = (c_void_p * max(1, len(prompts)))()
            try:
                for i in range(len(prompts)):
                    self._use_lora(i, lora)
                    gp = self._params({**defaults, **kwargs, "seq": i})
                    cb = _lib.token_fn(lambda t, s, n, st, ud, out=texts[i]: _collect(out, s, n, st))
                    gp.on_token = cb
                    arrs.append(_ids(ids[i]))
                    gps.append(gp)
                    cbs.append(cb)
                    h = c_void_p()
                    check(lib.gemma8_gen_begin(self._ctx, arrs[i], len(ids[i]), byref(gp), byref(h)))
                    gens[i] = h.value
                done = (c_bool * len(prompts))()
                self._aborted.clear()
                while not all(done):
                    if self._aborted.is_set():
                        raise Aborted(_lib.ERR_ABORTED, "generation aborted")
                    live = [i for i in range(len(prompts)) if not done[i]]
                    sub = (c_void_p * len(live))(*[gens[i] for i in live])
                    sub_done = (c_bool * len(live))()
                    with _Interrupt(self._ctx):
                        check(lib.gemma8_gen_step_many(sub, len(live), sub_done))
                    for k, i in enumerate(live):
                        done[i] = sub_done[k]
            finally:
                for i in range(len(prompts)):
                    if gens[i]:
                        lib.gemma8_gen_end(c_void_p(gens[i]), None)
            return [b"".join(t).decode("utf-8", "replace") for t in texts]

    # ---- logits and embeddings ------------------------------------------------------------

    def logits(self, ids: Sequence[int], seq: int = 0) -> Any:
        """The logits after each of ids, evaluated from an empty sequence (which then holds ids):
        a numpy array (len(ids), n_vocab) of float32 when numpy is installed, else a list of lists."""
        arr = self._checked_ids(ids)
        n, v = len(ids), self.info.n_vocab
        if n == 0:
            raise ValueError("logits of no tokens")
        with self._busy():
            self._check_seq(seq)
            self._use_lora(seq, None)
            lib.gemma8_seq_clear(self._ctx, seq)
            out = (c_uint8 * n)(*([_lib.OUTPUT_LOGITS] * n))
            b = _lib.Batch(n, arr, None, None, seq, out)
            self._aborted.clear()
            with _Interrupt(self._ctx):
                check(lib.gemma8_decode(self._ctx, byref(b)))
            try:
                import numpy as np
            except ImportError:
                np = None
            rows = []
            for i in range(n):
                p = lib.gemma8_get_logits(self._ctx, i)
                rows.append(np.ctypeslib.as_array(p, (v,)).copy() if np else p[:v])
            return np.stack(rows) if np else rows

    def embed(self, texts: Union[str, Sequence[str]]) -> Union[list[float], list[list[float]]]:
        """The embedding of a text (a list of floats), or of each of a list of texts: the mean of
        the last hidden layer over its tokens (<bos> first, control tokens recognised),
        L2-normalised, as the server's /v1/embeddings. Uses (and clears) sequence 0."""
        one = isinstance(texts, str)
        out = []
        for t in [texts] if one else texts:
            out.append(self._embed_ids(self.tokenize(t, add_bos=True, special=True)))
        return out[0] if one else out

    def _embed_ids(self, ids: list[int]) -> list[float]:
        if not ids:
            raise ValueError("an embedding of no tokens")
        vec = (c_float * self.info.n_embd)()
        with self._busy():
            self._use_lora(0, None)
            with _Interrupt(self._ctx):
                check(lib.gemma8_embed(self._ctx, 0, _ids(ids), len(ids), vec))
        return list(vec)

    # ---- OpenAI-shaped calls (llama-cpp-python's names) -------------------------------------

    def create_completion(self, prompt: Prompt, **kwargs: Any) -> Any:
        """OpenAI's completion (llama-cpp-python's Llama.create_completion): a dict, or with
        stream=True an iterator of chunks."""
        from .openai import create_completion

        return create_completion(self, prompt, **kwargs)

    __call__ = create_completion

    def create_chat_completion(self, messages: Sequence[dict], **kwargs: Any) -> Any:
        """OpenAI's chat completion (llama-cpp-python's Llama.create_chat_completion), with
        response_format, grammar and tools: a dict, or with stream=True an iterator of chunks."""
        from .openai import create_chat_completion

        return create_chat_completion(self, messages, **kwargs)

    def create_embedding(self, input: Union[str, Sequence[str]], model: Optional[str] = None) -> dict:
        """OpenAI's embeddings response for a text or a list of texts."""
        from .openai import create_embedding

        return create_embedding(self, input, model)


def _collect(out: list, text: Any, n: int, state: int) -> bool:
    if state == _lib.RUN_NORMAL and n:
        out.append(ctypes.string_at(text, n))
    return True


class _Interrupt:
    """Ctrl-C during a library call. A signal handler runs Python wherever the main thread is, and
    in a token callback its KeyboardInterrupt would be lost (ctypes cannot raise from a callback).
    So while the call runs, Ctrl-C only marks the call and aborts it (gemma8_abort: within one
    layer), and KeyboardInterrupt is raised once the call has returned; the generation then ends
    as aborted and the Model stays usable. Only on the main thread, and only when SIGINT has
    Python's default handler (a program's own handler is left alone)."""

    def __init__(self, ctx: c_void_p):
        self.ctx = ctx
        self.hit = False
        self.prev: Any = None

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.hit = True
        lib.gemma8_abort(self.ctx)

    def __enter__(self) -> "_Interrupt":
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self.prev = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.prev is not None:
            signal.signal(signal.SIGINT, self.prev)
            self.prev = None
        if self.hit:
            raise KeyboardInterrupt


class _Busy:
    """A Model's lock, refused rather than waited for: one thread at a time, and a generation not
    yet finished (an iterator not exhausted) keeps it."""

    def __init__(self, lock: threading.Lock):
        self.lock = lock
        self.held = False

    def __enter__(self) -> "_Busy":
        if not self.lock.acquire(blocking=False):
            raise RuntimeError(
                "this Model is busy: another thread uses it, or a generation's iterator is not finished "
                "(exhaust or close it); a Model runs one call at a time"
            )
        self.held = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.held:
            self.held = False
            self.lock.release()


class _Stream:
    """A generation's pieces. Dropped or closed before its end, it ends the generation (the
    sequence keeps what was evaluated) and frees the Model, also if it never started."""

    def __init__(self, steps: Iterator[str], busy: _Busy):
        self._steps = steps
        self._busy = busy

    def __iter__(self) -> "_Stream":
        return self

    def __next__(self) -> str:
        return next(self._steps)

    def close(self) -> None:
        self._steps.close()
        self._busy.__exit__()  # a generator closed before it started never ran its finally

    def __del__(self) -> None:
        self.close()


def _type_code(name: str) -> int:
    code = ctypes.c_int()
    if not lib.gemma8_type_parse(str(name).encode(), byref(code)):
        raise ValueError(f"unknown type {name!r} (f32, f16, bf16, q8_0, q4_0)")
    return code.value


def _model_info(i: "_lib.ModelInfo") -> ModelInfo:
    return ModelInfo(
        arch=i.arch.decode(),
        name=i.name.decode("utf-8", "replace"),
        n_vocab=i.n_vocab,
        n_embd=i.n_embd,
        n_layer=i.n_layer,
        n_head=i.n_head,
        n_head_kv=i.n_head_kv,
        head_dim=i.head_dim,
        n_ff=i.n_ff,
        n_ctx_train=i.n_ctx_train,
        sliding_window=i.sliding_window,
        n_layer_sliding=i.n_layer_sliding,
        rope_base=i.rope_base,
        rope_base_local=i.rope_base_local,
        rope_scale=i.rope_scale,
        query_pre_attn_scalar=i.query_pre_attn_scalar,
        attn_softcap=i.attn_softcap,
        final_softcap=i.final_softcap,
        rms_eps=i.rms_eps,
        qk_norm=i.qk_norm,
        matrix_type=lib.gemma8_type_name(i.matrix_type).decode(),
        n_params=i.n_params,
        weight_bytes=i.weight_bytes,
    )


def _result(r: "_lib.GenerateResult") -> GenerationResult:
    reasons = _lib.STOP_REASONS
    return GenerationResult(
        n_prompt=r.n_prompt,
        n_reused=r.n_reused,
        n_generated=r.n_generated,
        prompt_seconds=r.prompt_seconds,
        gen_seconds=r.gen_seconds,
        stop_reason=reasons[r.stop_reason] if r.stop_reason < len(reasons) else "?",
        stop_index=r.stop_index,
    )
