"""The C library: found, loaded, and its functions and structs declared for ctypes.

Every struct here mirrors one of include/gemma8.h field for field (tests/test_abi.py compiles the
header and compares each size and offset). The library is checked to be the version these
declarations were written for: a 0.x library may change its structs between minor versions.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_double,
    c_float,
    c_int,
    c_int32,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

API_VERSION = "0.7"  # the major.minor of gemma8.h these declarations follow

OK = 0
ERR_IO = 1
ERR_FORMAT = 2
ERR_UNSUPPORTED = 3
ERR_NOMEM = 4
ERR_INVALID_ARG = 5
ERR_CONTEXT_FULL = 6
ERR_ABORTED = 7
ERR_BUFFER_TOO_SMALL = 8

TYPE_F32 = 0
TYPE_F16 = 1
TYPE_Q4_0 = 2
TYPE_Q8_0 = 8
KV_AUTO = -1

OUTPUT_NONE = 0
OUTPUT_LOGITS = 1
OUTPUT_HIDDEN = 2

RUN_NORMAL = 0
RUN_WAITING = 1
RUN_FINISH = 2
RUN_ERROR = 3

TOOLS_AUTO = 0
TOOLS_NONE = 1
TOOLS_REQUIRED = 2

STOP_REASONS = ("none", "eog", "length", "stop", "callback", "context", "aborted", "embedded")

TOOL_CALL_OPEN = "```tool_call\n"
TOOL_OUTPUT_OPEN = "```tool_output\n"
TOOL_BLOCK_CLOSE = "\n```"
MAX_LORA = 8

progress_fn = CFUNCTYPE(c_bool, c_char_p, c_uint64, c_uint64, c_void_p)
token_fn = CFUNCTYPE(c_bool, c_int32, POINTER(c_char), c_size_t, c_int, c_void_p)


class ConvertParams(Structure):
    _fields_ = [
        ("type", c_int),
        ("progress", progress_fn),
        ("progress_user_data", c_void_p),
        ("lora", c_char_p),
        ("lora_scale", c_float),
        ("output_type", c_int32),
    ]


class ModelParams(Structure):
    _fields_ = [("reserved", c_int32)]


class ModelInfo(Structure):
    _fields_ = [
        ("n_vocab", c_int32),
        ("n_embd", c_int32),
        ("n_layer", c_int32),
        ("n_head", c_int32),
        ("n_head_kv", c_int32),
        ("head_dim", c_int32),
        ("n_ff", c_int32),
        ("n_ctx_train", c_int32),
        ("sliding_window", c_int32),
        ("query_pre_attn_scalar", c_float),
        ("attn_softcap", c_float),
        ("final_softcap", c_float),
        ("rms_eps", c_float),
        ("rope_base", c_float),
        ("matrix_type", c_int),
        ("n_params", c_uint64),
        ("weight_bytes", c_uint64),
        ("name", c_char * 128),
        ("file_bytes_of_type", c_uint64 * 32),
        ("tensors_of_type", c_int32 * 32),
        ("arch", c_char * 16),
        ("n_layer_sliding", c_int32),
        ("rope_base_local", c_float),
        ("rope_scale", c_float),
        ("qk_norm", c_bool),
    ]


class ChatMessage(Structure):
    _fields_ = [
        ("role", c_char_p),
        ("content", c_char_p),
        ("parts", POINTER(c_char_p)),
        ("n_parts", c_int32),
    ]


class ContextParams(Structure):
    _fields_ = [
        ("n_ctx", c_int32),
        ("n_batch", c_int32),
        ("n_threads", c_int32),
        ("kv_type", c_int32),
        ("n_seq", c_int32),
        ("kv_unified", c_bool),
    ]


class MemoryEstimate(Structure):
    _fields_ = [
        ("weights", c_uint64),
        ("kv_cache", c_uint64),
        ("kv_cache_full", c_uint64),
        ("scratch", c_uint64),
        ("total", c_uint64),
        ("available", c_uint64),
        ("loaded", c_uint64),
    ]


class Batch(Structure):
    _fields_ = [
        ("n", c_int32),
        ("token", POINTER(c_int32)),
        ("embd", POINTER(c_float)),
        ("seq", POINTER(c_int32)),
        ("seq_id", c_int32),
        ("output", POINTER(c_uint8)),
    ]


class LoraInfo(Structure):
    _fields_ = [
        ("n_matrices", c_int32),
        ("min_rank", c_int32),
        ("max_rank", c_int32),
        ("n_params", c_uint64),
        ("alpha", c_float),
    ]


class LogitBias(Structure):
    _fields_ = [("token", c_int32), ("bias", c_float)]


class SamplerParams(Structure):
    _fields_ = [
        ("temperature", c_float),
        ("top_k", c_int32),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repeat_penalty", c_float),
        ("repeat_last_n", c_int32),
        ("frequency_penalty", c_float),
        ("presence_penalty", c_float),
        ("mirostat", c_int32),
        ("mirostat_tau", c_float),
        ("mirostat_eta", c_float),
        ("seed", c_uint32),
        ("logit_bias", POINTER(LogitBias)),
        ("n_logit_bias", c_int32),
    ]


class Tool(Structure):
    _fields_ = [("name", c_char_p), ("description", c_char_p), ("parameters", c_char_p)]


class GenerateParams(Structure):
    _fields_ = [
        ("max_new_tokens", c_int32),
        ("sampling", SamplerParams),
        ("ignore_eos", c_bool),
        ("stop", POINTER(c_char_p)),
        ("n_stop", c_int32),
        ("on_token", token_fn),
        ("user_data", c_void_p),
        ("drop_oldest_turns", c_bool),
        ("seq", c_int32),
        ("grammar", c_void_p),
        ("embed", c_bool),
    ]


class GenerateResult(Structure):
    _fields_ = [
        ("n_prompt", c_int32),
        ("n_reused", c_int32),
        ("n_generated", c_int32),
        ("prompt_seconds", c_double),
        ("gen_seconds", c_double),
        ("stop_reason", c_int),
        ("n_dropped_messages", c_int32),
        ("mask_seconds", c_double),
        ("stop_index", c_int32),
    ]


STRUCTS = {
    "gemma8_convert_params": ConvertParams,
    "gemma8_model_params": ModelParams,
    "gemma8_model_info": ModelInfo,
    "gemma8_chat_message": ChatMessage,
    "gemma8_context_params": ContextParams,
    "gemma8_memory_estimate": MemoryEstimate,
    "gemma8_batch": Batch,
    "gemma8_lora_info": LoraInfo,
    "gemma8_logit_bias": LogitBias,
    "gemma8_sampler_params": SamplerParams,
    "gemma8_tool": Tool,
    "gemma8_generate_params": GenerateParams,
    "gemma8_generate_result": GenerateResult,
}

P = c_void_p  # an opaque handle (gemma8_model *, gemma8_context *, ...)
PP = POINTER(c_void_p)
I32P = POINTER(c_int32)
FP = POINTER(c_float)

# name: (result, arguments)
_FUNCTIONS = {
    "gemma8_version": (c_char_p, []),
    "gemma8_status_str": (c_char_p, [c_int]),
    "gemma8_last_error": (c_char_p, []),
    "gemma8_type_name": (c_char_p, [c_int]),
    "gemma8_type_parse": (c_bool, [c_char_p, POINTER(c_int)]),
    "gemma8_convert_default_params": (ConvertParams, []),
    "gemma8_convert_hf": (c_int, [c_char_p, c_char_p, POINTER(ConvertParams)]),
    "gemma8_quantize": (c_int, [c_char_p, c_char_p, POINTER(ConvertParams)]),
    "gemma8_convert_random": (c_int, [c_char_p, c_char_p, c_char_p, POINTER(ConvertParams)]),
    "gemma8_model_default_params": (ModelParams, []),
    "gemma8_model_load": (c_int, [c_char_p, POINTER(ModelParams), PP]),
    "gemma8_model_free": (None, [P]),
    "gemma8_model_get_info": (ModelInfo, [P]),
    "gemma8_tokenize": (c_int, [P, c_char_p, c_size_t, c_bool, c_bool, I32P, c_int32, I32P]),
    "gemma8_detokenize": (c_int, [P, I32P, c_int32, c_bool, c_char_p, c_size_t, POINTER(c_size_t)]),
    "gemma8_token_bos": (c_int32, [P]),
    "gemma8_token_eos": (c_int32, [P]),
    "gemma8_token_is_eog": (c_bool, [P, c_int32]),
    "gemma8_chat_tokenize": (c_int, [P, POINTER(ChatMessage), c_int32, c_bool, I32P, c_int32, I32P]),
    "gemma8_context_default_params": (ContextParams, []),
    "gemma8_context_new": (c_int, [P, POINTER(ContextParams), PP]),
    "gemma8_estimate_memory": (MemoryEstimate, [P, POINTER(ContextParams)]),
    "gemma8_context_free": (None, [P]),
    "gemma8_decode": (c_int, [P, POINTER(Batch)]),
    "gemma8_get_logits": (FP, [P, c_int32]),
    "gemma8_lora_load": (c_int, [P, c_char_p, PP]),
    "gemma8_lora_free": (None, [P]),
    "gemma8_lora_get_info": (LoraInfo, [P]),
    "gemma8_seq_set_lora": (c_int, [P, c_int32, PP, FP, c_int32]),
    "gemma8_lora_convert": (c_int, [c_char_p, c_char_p]),
    "gemma8_n_ctx": (c_int32, [P]),
    "gemma8_n_seq": (c_int32, [P]),
    "gemma8_seq_n_past": (c_int32, [P, c_int32]),
    "gemma8_seq_clear": (None, [P, c_int32]),
    "gemma8_sampler_default_params": (SamplerParams, []),
    "gemma8_grammar_from_gbnf": (c_int, [c_char_p, PP]),
    "gemma8_grammar_from_json_schema": (c_int, [c_char_p, PP]),
    "gemma8_grammar_gbnf": (c_char_p, [P]),
    "gemma8_grammar_warnings": (c_char_p, [P]),
    "gemma8_grammar_free": (None, [P]),
    "gemma8_tools_prompt": (c_int, [POINTER(Tool), c_int32, c_char_p, c_size_t, POINTER(c_size_t)]),
    "gemma8_grammar_from_tools": (c_int, [POINTER(Tool), c_int32, c_int, c_char_p, c_bool, PP]),
    "gemma8_generate_default_params": (GenerateParams, []),
    "gemma8_gen_begin": (c_int, [P, I32P, c_int32, POINTER(GenerateParams), PP]),
    "gemma8_gen_step": (c_int, [P, POINTER(c_bool)]),
    "gemma8_gen_step_many": (c_int, [PP, c_int32, POINTER(c_bool)]),
    "gemma8_gen_end": (c_int, [P, POINTER(GenerateResult)]),
    "gemma8_gen_embedding": (FP, [P]),
    "gemma8_abort": (None, [P]),
    "gemma8_embed": (c_int, [P, c_int32, I32P, c_int32, FP]),
}


def _candidates() -> list[str]:
    """Where the library may be, in order: $GEMMA8_LIBRARY, the copy built into this package,
    the library directory pkg-config gives for gemma8, then the linker's search path."""
    here = Path(__file__).resolve().parent
    found = []
    if os.environ.get("GEMMA8_LIBRARY"):
        found.append(os.environ["GEMMA8_LIBRARY"])
    bundled = sorted(here.glob("libgemma8.so*"))
    found += [str(p) for p in bundled]
    try:
        libdir = subprocess.run(
            ["pkg-config", "--variable=libdir", "gemma8"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        libdir = ""
    if libdir:
        found.append(os.path.join(libdir, "libgemma8.so"))
    system = ctypes.util.find_library("gemma8")
    if system:
        found.append(system)
    return found


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path}: {e}")
            continue
        lib.gemma8_version.restype = c_char_p
        version = lib.gemma8_version().decode()
        if ".".join(version.split(".")[:2]) != API_VERSION:
            tried.append(f"{path}: version {version}, these bindings are for {API_VERSION}.x")
            continue
        for name, (res, args) in _FUNCTIONS.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        return lib
    where = "; ".join(tried) if tried else "none found"
    raise ImportError(
        "gemma8: no usable libgemma8.so (" + where + "). Install the package from a checkout "
        "(pip install ./python builds it), or install the library (make install) so that "
        "pkg-config finds it, or set GEMMA8_LIBRARY to its path."
    )


lib = _load()


def last_error() -> str:
    return lib.gemma8_last_error().decode("utf-8", "replace")
