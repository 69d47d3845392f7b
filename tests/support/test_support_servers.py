"""The local counterparts behave like the real services for the clients we use."""

from __future__ import annotations

import math
import threading
import time
import uuid

import httpx
import openai
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests.support.chroma_server import ChromaServer
from tests.support.openai_server import FakeOpenAIServer, fake_embedding


def _client(server: FakeOpenAIServer, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", **kwargs)  # type: ignore[arg-type]


# -- OpenAI-compatible server: raw client ---------------------------------------------------------


def test_completion_with_real_client(openai_server: FakeOpenAIServer) -> None:
    openai_server.queue_reply("The summit ended without a deal.")
    resp = _client(openai_server, max_retries=0).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "News?"}],
    )
    assert resp.choices[0].message.content == "The summit ended without a deal."
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "gpt-4o-mini"
    assert resp.usage is not None and resp.usage.completion_tokens == 6
    assert openai_server.last_messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "News?"},
    ]
    (req,) = openai_server.requests
    assert req.method == "POST" and req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer test-key"
    assert openai_server.pending_replies == 0


def test_replies_are_fifo(openai_server: FakeOpenAIServer) -> None:
    client = _client(openai_server, max_retries=0)
    for text in ("first", "second"):
        openai_server.queue_reply(text)
    got = [
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": str(i)}])
        .choices[0]
        .message.content
        for i in range(2)
    ]
    assert got == ["first", "second"]


def test_streaming_with_real_client(openai_server: FakeOpenAIServer) -> None:
    text = "Markets rallied on Tuesday after the central bank held rates."
    openai_server.queue_reply(text, stream_chunk_size=5)
    stream = _client(openai_server, max_retries=0).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What happened?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert deltas == [text[i : i + 5] for i in range(0, len(text), 5)]
    assert "".join(deltas) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 10


def test_stream_wire_format(openai_server: FakeOpenAIServer) -> None:
    openai_server.queue_reply("abc", stream_chunk_size=2)
    with httpx.stream(
        "POST",
        f"{openai_server.base_url}/chat/completions",
        json={"model": "m", "messages": [], "stream": True},
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert len(lines) == 5  # role, "ab", "c", finish, [DONE]; no usage chunk unless asked


def test_delay_past_timeout_raises_timeout(openai_server: FakeOpenAIServer) -> None:
    openai_server.queue_reply("too late", delay=3)
    client = _client(openai_server, timeout=0.5, max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 2


def test_stop_does_not_wait_for_pending_delay() -> None:
    server = FakeOpenAIServer().start()
    server.queue_reply("never sent", delay=30)
    url = f"{server.base_url}/chat/completions"
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(url, json={"model": "m", "messages": []}, timeout=60)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    caller.join(timeout=5)
    assert isinstance(outcome[0], httpx.RemoteProtocolError)  # dropped, never answered


def test_500_then_200_is_retried(openai_server: FakeOpenAIServer) -> None:
    openai_server.queue_reply("upstream exploded", status=500, retry_after=0.05)
    openai_server.queue_reply("recovered")
    resp = _client(openai_server, max_retries=1).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    assert resp.choices[0].message.content == "recovered"
    assert len(openai_server.requests_to("/chat/completions")) == 2


def test_429_surfaces_as_rate_limit_error(openai_server: FakeOpenAIServer) -> None:
    openai_server.queue_reply("Rate limit reached", status=429)
    with pytest.raises(openai.RateLimitError) as info:
        _client(openai_server, max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 429
    assert "Rate limit reached" in str(info.value)


def test_empty_queue_is_a_clear_non_retried_error(openai_server: FakeOpenAIServer) -> None:
    with pytest.raises(openai.InternalServerError, match="no reply queued"):
        _client(openai_server, max_retries=3).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert len(openai_server.requests) == 1


def test_default_reply_when_queue_empty() -> None:
    with FakeOpenAIServer(default_reply="fallback") as server:
        resp = _client(server, max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert resp.choices[0].message.content == "fallback"


def test_models_endpoint(openai_server: FakeOpenAIServer) -> None:
    ids = [m.id for m in _client(openai_server).models.list()]
    assert openai_server.model in ids


def test_embeddings_with_real_client(openai_server: FakeOpenAIServer) -> None:
    client = _client(openai_server, max_retries=0)
    texts = ["storm hits coast", "storm hits coast", "election results announced"]
    resp = client.embeddings.create(model="text-embedding-3-small", input=texts)  # base64 wire
    vecs = [d.embedding for d in resp.data]
    assert [len(v) for v in vecs] == [64, 64, 64]
    assert vecs[0] == vecs[1] != vecs[2]
    assert math.isclose(sum(x * x for x in vecs[0]), 1.0, rel_tol=1e-5)
    as_floats = client.embeddings.create(
        model="m", input="storm hits coast", encoding_format="float"
    )
    assert as_floats.data[0].embedding == fake_embedding("storm hits coast", 64)
    assert len(client.embeddings.create(model="m", input="x", dimensions=8).data[0].embedding) == 8


def test_embedding_similarity_follows_shared_words() -> None:
    query = fake_embedding("flood warning for the river valley", 128)
    near = fake_embedding("river valley flood warning issued", 128)
    far = fake_embedding("football club signs new striker", 128)

    def dot(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert dot(query, near) > dot(query, far) + 0.3


def test_embedding_failure_then_success(openai_server: FakeOpenAIServer) -> None:
    openai_server.queue_embedding_failure(500, retry_after=0.05)
    resp = _client(openai_server, max_retries=1).embeddings.create(model="m", input="hello")
    assert len(resp.data[0].embedding) == 64
    assert len(openai_server.requests_to("/embeddings")) == 2


# -- OpenAI-compatible server: langchain_openai ---------------------------------------------------


def _chat(server: FakeOpenAIServer) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini", base_url=server.base_url, api_key="x", timeout=5, max_retries=0
    )


def test_langchain_invoke(openai_server: FakeOpenAIServer) -> None:
    openai_server.queue_reply("Rates were held at 4.5%.")
    msg = _chat(openai_server).invoke([("system", "Answer from sources."), ("human", "Rates?")])
    assert msg.content == "Rates were held at 4.5%."
    assert openai_server.last_messages() == [
        {"role": "system", "content": "Answer from sources."},
        {"role": "user", "content": "Rates?"},
    ]


def test_langchain_stream(openai_server: FakeOpenAIServer) -> None:
    text = "Three people were rescued from the flooded valley."
    openai_server.queue_reply(text, stream_chunk_size=6)
    chunks = list(_chat(openai_server).stream("What happened?"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    pieces = [c.content for c in chunks if c.content]
    assert pieces == [text[i : i + 6] for i in range(0, len(text), 6)]
    assert "".join(str(p) for p in pieces) == text


async def test_langchain_async_stream(openai_server: FakeOpenAIServer) -> None:
    openai_server.queue_reply("async works", stream_chunk_size=3)
    pieces = [str(c.content) async for c in _chat(openai_server).astream("hi")]
    assert "".join(pieces) == "async works"


def test_langchain_timeout(openai_server: FakeOpenAIServer) -> None:
    openai_server.queue_reply("slow", delay=3)
    llm = ChatOpenAI(
        model="m", base_url=openai_server.base_url, api_key="x", timeout=0.5, max_retries=0
    )
    with pytest.raises(openai.APITimeoutError):
        llm.invoke("hi")


def test_langchain_embeddings(openai_server: FakeOpenAIServer) -> None:
    emb = OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=openai_server.base_url,
        api_key="x",
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    docs = emb.embed_documents(["first article", "second article", "third"])
    assert [len(v) for v in docs] == [64, 64, 64]
    query = emb.embed_query("first article")
    assert query == pytest.approx(docs[0], abs=1e-6)
    body = openai_server.requests_to("/embeddings")[0].body
    assert body["input"] == ["first article", "second article", "third"]


# -- Chroma server --------------------------------------------------------------------------------


@pytest.mark.integration
def test_chroma_roundtrip(chroma_server: ChromaServer) -> None:
    client = chroma_server.client()
    assert client.heartbeat() > 0
    name = f"support-{uuid.uuid4().hex[:12]}"
    coll = client.create_collection(name, metadata={"hnsw:space": "cosine"})
    coll.upsert(
        ids=["a", "b", "c"],
        embeddings=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.9, 0.1, 0.0]],
        documents=["alpha story", "beta story", "alpha follow-up"],
        metadatas=[{"source": "x"}, {"source": "y"}, {"source": "x"}],
    )
    assert coll.count() == 3
    res = coll.query(query_embeddings=[[1.0, 0.0, 0.0]], n_results=2)
    assert res["ids"] == [["a", "c"]]
    assert res["documents"] == [["alpha story", "alpha follow-up"]]
    filtered = coll.query(query_embeddings=[[0.0, 1.0, 0.0]], n_results=3, where={"source": "x"})
    assert set(filtered["ids"][0]) == {"a", "c"}
    client.delete_collection(name)


@pytest.mark.integration
def test_chroma_data_survives_new_client(chroma_server: ChromaServer) -> None:
    name = f"support-{uuid.uuid4().hex[:12]}"
    chroma_server.client().create_collection(name).upsert(ids=["1"], embeddings=[[0.5, 0.5]])
    again = chroma_server.client().get_collection(name).get(ids=["1"], include=["embeddings"])
    assert again["ids"] == ["1"]
    assert list(again["embeddings"][0]) == pytest.approx([0.5, 0.5])
    assert chroma_server.startup_seconds is not None
    assert chroma_server.url == f"http://127.0.0.1:{chroma_server.port}"
