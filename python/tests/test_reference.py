"""The Python API against the reference data the C tests use (transformers, PEFT, HF tokenizers):
greedy ids, logits, tokenizer and chat-template ids."""

import numpy as np
import pytest

import gemma8

from conftest import DATA, jsonl, reference

CONTROL = ("<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<bos>", "<eos>")


def forges_turns(messages):
    return any(c in m["content"] for m in messages for c in CONTROL)


FIXTURES = ["tiny-a", "tiny-b", "tiny-c", "gemma3/tiny-a", "gemma3/tiny-b"]


@pytest.mark.parametrize("fixture", FIXTURES)
def test_greedy_ids_equal_transformers(models, fixture):
    ref = reference(fixture)
    prompt, want = ref["gen0.prompt"].tolist(), ref["gen0.output"].tolist()
    with gemma8.Model(models(fixture), threads=2) as m:
        text = "".join(m.generate(prompt, temperature=0, max_tokens=len(want), ignore_eos=True))
        assert m.last_tokens == want
        assert m.last_result.n_generated == len(want) and m.last_result.stop_reason == "length"
        assert text == m.detokenize(want)
        # a second run on the same sequence reuses the prompt's cache and gives the same ids
        "".join(m.generate(prompt, temperature=0, max_tokens=len(want), ignore_eos=True))
        assert m.last_tokens == want and m.last_result.n_reused > 0


@pytest.mark.parametrize("fixture", FIXTURES)
def test_logits_equal_transformers(models, fixture):
    ref = reference(fixture)
    with gemma8.Model(models(fixture), threads=2) as m:
        for seq in ("seq0", "seq1"):
            if f"{seq}.tokens" not in ref:
                continue
            got = m.logits(ref[f"{seq}.tokens"].tolist())
            assert got.shape == ref[f"{seq}.logits"].shape
            assert float(np.max(np.abs(got - ref[f"{seq}.logits"]))) <= 1e-4


@pytest.mark.parametrize("fixture", ["tiny-a-lora", "gemma3/tiny-a-lora"])
def test_lora_equals_peft_and_scale_zero_equals_the_base(models, fixture):
    base_fixture = fixture.replace("-lora", "")
    ref, base_ref = reference(fixture), reference(base_fixture)
    tokens = ref["seq0.tokens"].tolist()
    adapter = str(DATA / fixture)
    with gemma8.Model(models(base_fixture), threads=2, lora=adapter) as m:
        got = m.logits(tokens)
    assert float(np.max(np.abs(got - ref["seq0.logits"]))) <= 1e-4
    with gemma8.Model(models(base_fixture), threads=2, lora=[(adapter, 0.0)]) as m:
        zero = m.logits(tokens)
        # per call: the adapter at scale 1, then none, on the same context
        pieces_lora = "".join(
            m.generate(tokens, temperature=0, max_tokens=8, ignore_eos=True, lora=adapter)
        )
        pieces_base = "".join(m.generate(tokens, temperature=0, max_tokens=8, ignore_eos=True, lora=[]))
    with gemma8.Model(models(base_fixture), threads=2) as m:
        base = m.logits(tokens)
        plain = "".join(m.generate(tokens, temperature=0, max_tokens=8, ignore_eos=True))
    assert np.array_equal(zero, base)  # bit for bit
    if base_fixture == "tiny-a":
        assert float(np.max(np.abs(base[: len(base_ref["seq0.logits"])] - base_ref["seq0.logits"]))) <= 1e-4
    assert pieces_base == plain
    assert not np.array_equal(got, base)
    assert isinstance(pieces_lora, str)


def test_tokenizer_cases_gemma2(fullvocab):
    with gemma8.Model(fullvocab, n_ctx=512) as m:
        for case in jsonl(DATA / "tokenizer" / "encode_cases.jsonl"):
            assert m.tokenize(case["text"], add_bos=False, special=True) == case["ids"], case["text"]
            assert m.tokenize(case["text"], add_bos=True, special=True) == case["ids_with_special"], case[
                "text"
            ]
            assert m.detokenize(case["ids"]) == case["decoded"], case["text"]
            assert m.detokenize(case["ids"], skip_special=True) == case["decoded_skip_special"]


def test_tokenizer_cases_gemma3(fullvocab3):
    with gemma8.Model(fullvocab3, n_ctx=512) as m:
        assert m.info.arch == "gemma3" and m.info.n_vocab == 262144
        for case in jsonl(DATA / "gemma3" / "tokenizer" / "encode_cases.jsonl"):
            assert m.tokenize(case["text"], add_bos=False, special=True) == case["ids"], case["text"]
            assert m.tokenize(case["text"], add_bos=True, special=True) == case["ids_with_special"], case[
                "text"
            ]


@pytest.mark.parametrize("which", ["gemma2", "gemma3"])
def test_chat_template_ids_and_logits(fullvocab, fullvocab3, which):
    path, cases = (
        (fullvocab, DATA / "fullvocab")
        if which == "gemma2"
        else (fullvocab3, DATA / "gemma3" / "fullvocab")
    )
    with gemma8.Model(path, n_ctx=1024) as m:
        for case in jsonl(cases / "chat_cases.jsonl"):
            ids = m.chat_tokens(case["messages"])
            if forges_turns(case["messages"]):
                # transformers renders the template to text and parses it, so control-token text in
                # a message becomes control tokens (a user can forge a turn); gemma8 keeps it text
                turns = len([x for x in case["messages"] if x["role"] != "system"])
                sot = m.tokenize("<start_of_turn>", add_bos=False, special=True)[0]
                eot = m.tokenize("<end_of_turn>", add_bos=False, special=True)[0]
                assert (ids.count(sot), ids.count(eot)) == (turns + 1, turns), case["messages"]
                continue
            assert ids == case["ids"], case["messages"]
            last = m.logits(ids)[-1]
            for tok, logit in case["last_logits_top64"]:
                assert abs(float(last[tok]) - logit) <= 1e-4
