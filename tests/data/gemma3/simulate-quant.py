#!/usr/bin/env python3
"""simulate-quant.py - what w8a8 (q8_0) and w4a8 (q4_0, with a q8_0 embedding) can reach on the
Gemma 3 fixtures: an exact simulation of the quantization, independent of gemma8's code.

Weights are quantized as llama.cpp's reference quantizers do (Q8_0: d = amax / 127, q =
round(x / d); Q4_0: d = (the value of largest magnitude) / -8, q = min(15, trunc(x / d + 8.5));
d stored as IEEE half), every activation a matrix multiplies is quantized to Q8_0 in blocks of 32
(float32 x, half d), and each product is sum over blocks of d_w * d_x * (exact integer dot).
Everything else (norms, RoPE, attention, GeGLU, soft-caps) is computed in float64 from the
Gemma 3 equations (tests/data/gemma3/README.md). The unquantized run of the same code must match
transformers' reference logits (checked first), so the simulation is the model.

Writes quant-sim.json: per fixture and type, the mean over positions of KL(reference || simulated)
and the argmax agreement, for seq0 and seq1. Run once, offline (numpy, torch, safetensors):

    python3 tests/data/gemma3/simulate-quant.py
"""
import json
import os

import numpy as np
import safetensors.torch
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def half(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float64)


def q8_0(w):
    """Rows of w (float32 values) as Q8_0: per block of 32, (d as half, int8 quants)."""
    w = np.asarray(w, dtype=np.float32).reshape(w.shape[0], -1, 32)
    amax = np.abs(w).max(axis=2, keepdims=True)
    d = (amax / np.float32(127)).astype(np.float32)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), np.float32(0)).astype(np.float32)
    x = (w * inv).astype(np.float32)
    q = np.sign(x) * np.floor(np.abs(x) + 0.5)  # roundf: half away from zero
    return half(d), q.astype(np.int64)


def q4_0(w):
    w = np.asarray(w, dtype=np.float32).reshape(w.shape[0], -1, 32)
    idx = np.abs(w).argmax(axis=2)[..., None]  # the first of equal magnitudes
    mx = np.take_along_axis(w, idx, axis=2)
    d = (mx / np.float32(-8)).astype(np.float32)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), np.float32(0)).astype(np.float32)
    x = (w * inv + np.float32(8.5)).astype(np.float32)
    q = np.minimum(15, np.trunc(x).astype(np.int64))
    return half(d), q - 8


class Linear:
    """y = W x with W quantized (kind) and x quantized to Q8_0 per row, or exact (kind None)."""

    def __init__(self, w, kind):
        self.kind = kind
        self.w = w
        if kind == "q8_0":
            self.d, self.q = q8_0(w)
        elif kind == "q4_0":
            self.d, self.q = q4_0(w)

    def __call__(self, x):
        if self.kind is None:
            return x @ self.w.T
        dx, qx = q8_0(x.astype(np.float32))  # (T, B, 1), (T, B, 32)
        dots = np.einsum("tbk,obk->tob", qx, self.q).astype(np.float64)  # exact integers
        return np.einsum("tob,tb,ob->to", dots, dx[..., 0], self.d[..., 0])


def rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * (1.0 + w)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def layer_config(cfg):
    n = cfg["num_hidden_layers"]
    if "layer_types" in cfg:
        sliding = [t == "sliding_attention" for t in cfg["layer_types"]]
    else:
        p = cfg.get("sliding_window_pattern", 6)
        sliding = [bool((i + 1) % p) for i in range(n)]
    rp = cfg.get("rope_parameters")
    if rp and "full_attention" in rp:
        base_g, base_l = rp["full_attention"]["rope_theta"], rp["sliding_attention"]["rope_theta"]
        factor = rp["full_attention"].get("factor", 1.0) if rp["full_attention"].get("rope_type") == "linear" else 1.0
    else:
        base_g, base_l = cfg.get("rope_theta", 1e6), cfg.get("rope_local_base_freq", 1e4)
        rs = cfg.get("rope_scaling") or {}
        factor = rs.get("factor", 1.0) if rs.get("rope_type", rs.get("type")) == "linear" else 1.0
    return sliding, base_g, base_l, factor


def inv_freq(base, dim, factor):
    # as transformers: float32 of 1 / base^(2i/d), then divided by the linear factor
    e = (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)
    f = 1.0 / (base ** e)
    return (f / factor).numpy().astype(np.float64)


def forward(cfg, W, tokens, kind):
    E, H, KV, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps, window = cfg["rms_norm_eps"], cfg["sliding_window"]
    scale = cfg["query_pre_attn_scalar"] ** -0.5
    sliding, base_g, base_l, factor = layer_config(cfg)
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    emb = W["model.embed_tokens.weight"]
    emb_kind = None if kind is None else "q8_0"  # the embedding of a q4_0 model is q8_0
    if emb_kind:
        d, q = q8_0(emb)
        emb_rows = (q * d).reshape(emb.shape)
    else:
        emb_rows = emb
    x = emb_rows[tokens] * float(np.float32(np.sqrt(E)))
    lin = {}
    for name, w in W.items():
        if w.ndim == 2 and "embed_tokens" not in name:
            lin[name] = Linear(w, kind)
    out_lin = Linear(emb, emb_kind)
    for il in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{il}."
        h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = lin[p + "self_attn.q_proj.weight"](h).reshape(T, H, hd)
        k = lin[p + "self_attn.k_proj.weight"](h).reshape(T, KV, hd)
        v = lin[p + "self_attn.v_proj.weight"](h).reshape(T, KV, hd)
        q = rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
        k = rmsnorm(k, W[p + "self_attn.k_norm.weight"], eps)
        f = inv_freq(base_l, hd, 1.0) if sliding[il] else inv_freq(base_g, hd, factor)
        ang = pos[:, None] * f[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

        def rope(t):
            a, b = t[..., : hd // 2], t[..., hd // 2:]
            return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)

        q, k = rope(q), rope(k)
        att = np.zeros((T, H, hd))
        for hh in range(H):
            kh = hh // (H // KV)
            s = (q[:, hh, :] * scale) @ k[:, kh, :].T
            if cfg.get("attn_logit_softcapping"):
                c = cfg["attn_logit_softcapping"]
                s = np.tanh(s / c) * c
            i, j = np.arange(T)[:, None], np.arange(T)[None, :]
            mask = (j > i) | ((i - j >= window) if sliding[il] else False)
            s = np.where(mask, -np.inf, s)
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            att[:, hh, :] = s @ v[:, kh, :]
        o = lin[p + "self_attn.o_proj.weight"](att.reshape(T, H * hd))
        x = x + rmsnorm(o, W[p + "post_attention_layernorm.weight"], eps)
        h = rmsnorm(x, W[p + "pre_feedforward_layernorm.weight"], eps)
        g = gelu_tanh(lin[p + "mlp.gate_proj.weight"](h)) * lin[p + "mlp.up_proj.weight"](h)
        y = lin[p + "mlp.down_proj.weight"](g)
        x = x + rmsnorm(y, W[p + "post_feedforward_layernorm.weight"], eps)
    x = rmsnorm(x, W["model.norm.weight"], eps)
    logits = out_lin(x)
    if cfg.get("final_logit_softcapping"):
        c = cfg["final_logit_softcapping"]
        logits = np.tanh(logits / c) * c
    return logits


def mean_kl(ref, got):
    def logsm(a):
        a = a - a.max(axis=1, keepdims=True)
        return a - np.log(np.exp(a).sum(axis=1, keepdims=True))
    la, lb = logsm(ref.astype(np.float64)), logsm(got)
    return float((np.exp(la) * (la - lb)).sum(axis=1).mean())


def main():
    out = {"method": __doc__.split("\n\n")[1].replace("\n", " "), "torch": torch.__version__,
           "numpy": np.__version__}
    for fixture in ["tiny-a", "tiny-b"]:
        d = os.path.join(HERE, fixture)
        cfg = json.load(open(os.path.join(d, "config.json")))
        W = {k: v.to(torch.float64).numpy() for k, v in safetensors.torch.load_file(os.path.join(d, "model.safetensors")).items()}
        ref = safetensors.torch.load_file(os.path.join(d, "reference.safetensors"))
        res = {}
        for seq in ["seq0", "seq1"]:
            tokens = ref[seq + ".tokens"].numpy().astype(np.int64)
            want = ref[seq + ".logits"].numpy().reshape(len(tokens), -1)
            exact = forward(cfg, W, tokens, None)
            diff = float(np.abs(exact - want).max())
            assert diff < 1e-4, f"{fixture} {seq}: the float64 model is {diff} from transformers"
            res.setdefault("float64_max_abs_diff", {})[seq] = diff
            for kind in ["q8_0", "q4_0"]:
                got = forward(cfg, W, tokens, kind)
                agree = int((got.argmax(axis=1) == want.argmax(axis=1)).sum())
                res.setdefault(kind, {})[seq] = {"mean_kl": mean_kl(want, got), "argmax": agree, "T": len(tokens)}
        out[fixture] = res
        print(fixture, json.dumps(res))
    with open(os.path.join(HERE, "quant-sim.json"), "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
