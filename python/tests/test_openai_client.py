"""The official OpenAI Python SDK against `gemma8 serve` on loopback, and the server's answers
against the Python package's on the same model."""

import json

import jsonschema
import numpy as np
import openai
import pytest

import gemma8

HI = [{"role": "user", "content": "Why is the sky blue?"}]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)


@pytest.fixture(scope="module")
def local(demo):
    with gemma8.Model(demo, threads=1) as m:
        yield m


def test_chat_streamed_and_not_equal_the_package(client, local):
    r = client.chat.completions.create(model="demo", messages=HI, temperature=0, max_tokens=20)
    text = r.choices[0].message.content
    assert r.usage.completion_tokens == 20 and r.choices[0].finish_reason == "length"
    stream = client.chat.completions.create(
        model="demo", messages=HI, temperature=0, max_tokens=20, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text
    assert local.chat(HI, temperature=0, max_tokens=20) == text
    mine = local.create_chat_completion(HI, temperature=0, max_tokens=20)
    assert mine["choices"][0]["message"]["content"] == text
    assert mine["usage"]["prompt_tokens"] == r.usage.prompt_tokens


def test_completions_equal_the_package(client, local):
    r = client.completions.create(model="demo", prompt="The sky is", temperature=0, max_tokens=12)
    mine = local.create_completion("The sky is", temperature=0, max_tokens=12)
    assert r.choices[0].text == mine["choices"][0]["text"]
    assert r.usage.prompt_tokens == mine["usage"]["prompt_tokens"]


def test_embeddings_equal_the_package(client, local):
    texts = ["The sky is blue.", "Gemma runs on edge boards."]
    r = client.embeddings.create(model="demo", input=texts)
    mine = local.create_embedding(texts)
    assert len(r.data) == 2 and mine["object"] == "list"
    for theirs, ours in zip(r.data, mine["data"]):
        a, b = np.array(theirs.embedding), np.array(ours["embedding"])
        assert a.shape == b.shape == (local.info.n_embd,)
        assert np.max(np.abs(a - b)) <= 1e-6
    assert np.allclose(local.embed(texts[0]), mine["data"][0]["embedding"])
    assert r.usage.prompt_tokens == mine["usage"]["prompt_tokens"]


def test_response_format_json_schema(client):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "maxLength": 30}, "confidence": {"type": "number"}},
        "required": ["answer", "confidence"],
        "additionalProperties": False,
    }
    for seed in range(3):
        r = client.chat.completions.create(
            model="demo",
            messages=HI,
            seed=seed,
            temperature=1.0,
            max_tokens=100,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": schema, "strict": True},
            },
        )
        jsonschema.validate(json.loads(r.choices[0].message.content), schema)


def test_seeds_reproduce(client):
    def once(seed):
        r = client.chat.completions.create(
            model="demo", messages=HI, seed=seed, temperature=1.0, max_tokens=16
        )
        return r.choices[0].message.content

    assert once(5) == once(5)
    assert once(5) != once(6)


def test_tools_equal_the_package(client, local):
    params = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 16}},
        "required": ["city"],
    }
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Current weather", "parameters": params},
        }
    ]
    r = client.chat.completions.create(
        model="demo", messages=HI, tools=tools, tool_choice="required", temperature=0, max_tokens=60
    )
    assert r.choices[0].finish_reason == "tool_calls"
    calls = r.choices[0].message.tool_calls
    assert calls[0].function.name == "get_weather"
    jsonschema.validate(json.loads(calls[0].function.arguments), params)
    mine = local.create_chat_completion(
        HI, tools=tools, tool_choice="required", temperature=0, max_tokens=60
    )
    ours = mine["choices"][0]["message"]["tool_calls"]
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        (c["function"]["name"], json.loads(c["function"]["arguments"])) for c in ours
    ]
    # the result goes back; both sides render the same conversation
    history = HI + [
        r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18 C, sunny"},
    ]
    again = client.chat.completions.create(
        model="demo", messages=history, tools=tools, temperature=0, max_tokens=8
    )
    local_again = local.create_chat_completion(history, tools=tools, temperature=0, max_tokens=8)
    assert again.usage.prompt_tokens == local_again["usage"]["prompt_tokens"]
    assert again.choices[0].message.content == local_again["choices"][0]["message"]["content"]


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "f",
            "description": "A function",
            "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
        },
    }
]
CONVERSATIONS = [
    (HI, None),
    ([{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Really."}] + HI, None),
    (
        [
            {"role": "user", "content": [{"type": "text", "text": "a "}, {"type": "text", "text": " b"}]},
            {"role": "user", "content": "c"},
        ],
        None,
    ),
    (HI + [{"role": "assistant", "content": "Because"}], None),  # a prefill
    (
        HI
        + [
            {"role": "assistant", "content": "x"},
            {"role": "system", "content": "late system"},
            {"role": "user", "content": "y"},
        ],
        None,
    ),
    (
        HI
        + [
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
                    {"id": "c2", "type": "function", "function": {"name": "f", "arguments": '{"a": 2}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": "two ü"},
        ],
        TOOLS,
    ),
    ([{"role": "system", "content": "S"}] + HI, TOOLS),
]


@pytest.mark.parametrize("messages,tools", CONVERSATIONS)
def test_conversations_render_as_the_server_renders_them(server, local, messages, tools):
    import urllib.request

    body = {"messages": messages, **({"tools": tools} if tools else {})}
    req = urllib.request.Request(
        server.url + "/apply-template",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        prompt = json.load(r)["prompt"]
    assert local.detokenize(local.chat_tokens(messages, tools)) == prompt
