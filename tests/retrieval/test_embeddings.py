"""Local MiniLM embedder against sentence-transformers reference vectors, and the adapters.

tests/data/minilm_reference.json holds SentenceTransformer("all-MiniLM-L6-v2").encode() output
for the packaged model files (computed once, outside the project, with torch).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retrieval import minilm_onnx
from retrieval.embeddings import MINILM_DIM, Embedder, LocalMiniLM, OpenAIEmbedder, as_langchain
from tests.support.openai_server import FakeOpenAIServer

REFERENCE = Path(__file__).resolve().parent.parent / "data" / "minilm_reference.json"


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    data = json.loads(REFERENCE.read_text(encoding="utf-8"))
    vectors = np.asarray(data["embeddings"], dtype=np.float32)
    return data["sentences"], vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def fp32(model_cache: Path) -> LocalMiniLM:
    return LocalMiniLM(model_cache, batch_size=4)


@pytest.fixture(scope="module")
def int8(model_cache: Path) -> LocalMiniLM:
    return LocalMiniLM(model_cache, quantized=True, batch_size=4)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


# -- without the model ---------------------------------------------------------------------


def test_construction_is_lazy_and_empty_input_needs_no_model(tmp_path: Path) -> None:
    embedder = LocalMiniLM(tmp_path / "models", quantized=True)
    assert isinstance(embedder, Embedder)
    assert (embedder.model_id, embedder.dim) == ("minilm-l6-v2-int8", MINILM_DIM)
    out = embedder.embed_documents([])
    assert out.shape == (0, MINILM_DIM)
    assert out.dtype == np.float32
    assert embedder.model_path is None
    assert not (tmp_path / "models").exists()
    with pytest.raises(TypeError):
        embedder.embed_documents("a single string")


class _Fixed:
    model_id = "fixed"
    dim = 2

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray([[1.0, 0.0] if t else [0.0, 1.0] for t in texts], dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray([0.6, 0.8], dtype=np.float32)


def test_langchain_adapter_returns_plain_float_lists() -> None:
    lc = as_langchain(_Fixed())
    assert lc.embed_documents(["a", ""]) == [[1.0, 0.0], [0.0, 1.0]]
    query = lc.embed_query("q")
    assert all(type(x) is float for x in query)
    assert query == pytest.approx([0.6, 0.8])


# -- the real model ------------------------------------------------------------------------


@pytest.mark.integration
def test_fp32_matches_sentence_transformers(
    fp32: LocalMiniLM, reference: tuple[list[str], np.ndarray]
) -> None:
    sentences, expected = reference
    got = fp32.embed_documents(sentences)
    assert got.shape == (len(sentences), MINILM_DIM)
    assert got.dtype == np.float32
    assert np.all(_cosines(got, expected) >= 0.9999)
    # The query path (batch of one, no padding) gives the same vectors.
    queries = np.stack([fp32.embed_query(s) for s in sentences])
    assert np.all(_cosines(queries, expected) >= 0.9999)


@pytest.mark.integration
def test_int8_stays_close_to_the_reference(
    int8: LocalMiniLM, reference: tuple[list[str], np.ndarray]
) -> None:
    sentences, expected = reference
    assert int8.model_id == "minilm-l6-v2-int8"
    assert np.all(_cosines(int8.embed_documents(sentences), expected) >= 0.98)


@pytest.mark.integration
def test_order_norms_and_truncation(
    fp32: LocalMiniLM, reference: tuple[list[str], np.ndarray]
) -> None:
    sentences, _ = reference
    long_text = " ".join(["The committee postponed its vote on the harbour plan again."] * 400)
    texts = ["short", long_text, *sentences, "", "mid-length text about a budget vote"]
    # Lengths differ, so sorting by length reorders batches internally; results must not move.
    got = fp32.embed_documents(texts)
    one_by_one = np.stack([fp32.embed_query(t) for t in texts])
    assert np.all(_cosines(got, one_by_one) >= 0.9999)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # Everything after the first 254 word pieces is cut, so appending text changes nothing.
    longer = fp32.embed_query(long_text + " And a final sentence about something else.")
    assert float(longer @ got[1]) >= 0.9999


@pytest.mark.integration
def test_concurrent_queries_match_sequential(fp32: LocalMiniLM) -> None:
    texts = [f"Report {i} on the {'regional ' * (i % 5)}election results" for i in range(24)]
    expected = np.stack([fp32.embed_query(t) for t in texts])
    got: dict[int, np.ndarray] = {}

    def worker(start: int) -> None:
        for i in range(start, len(texts), 4):
            got[i] = fp32.embed_query(texts[i])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.allclose(np.stack([got[i] for i in range(len(texts))]), expected, atol=1e-6)


@pytest.mark.integration
def test_cached_model_files_are_reused(
    fp32: LocalMiniLM, int8: LocalMiniLM, model_cache: Path
) -> None:
    fp32.load()
    int8.load()
    files = {p.name: p.stat().st_mtime_ns for p in model_cache.glob("*.onnx")}
    assert len(files) == 2
    assert fp32.model_path is not None
    assert fp32.model_path.name.endswith(f"-b{minilm_onnx.BUILDER_VERSION}.onnx")
    again = LocalMiniLM(model_cache, quantized=True)
    again.embed_query("hello")
    assert again.model_path == int8.model_path
    assert {p.name: p.stat().st_mtime_ns for p in model_cache.glob("*.onnx")} == files
    assert not list(model_cache.glob(".*.tmp"))  # no temp files left behind


@pytest.mark.integration
def test_plain_onnx_graph_matches_the_fused_one(
    fp32: LocalMiniLM, reference: tuple[list[str], np.ndarray]
) -> None:
    import onnxruntime as ort

    sentences, expected = reference
    source = minilm_onnx.model_dir()
    model = minilm_onnx.build_encoder_graph(
        minilm_onnx.load_weights(source / "model.safetensors"),
        minilm_onnx.BertConfig.from_dir(source),
        fused=False,
    )
    assert {op.domain for op in model.opset_import} == {""}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    tokenizer, _ = fp32.load()
    for sentence, want in zip(sentences[:2], expected[:2], strict=True):
        ids = np.asarray([tokenizer.encode(sentence).ids], dtype=np.int64)
        (got,) = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        assert float(got[0] @ want) >= 0.9999


# -- OpenAI-compatible endpoint -------------------------------------------------------------


@pytest.mark.integration
def test_openai_embedder_discovers_dim_and_normalises(openai_server: FakeOpenAIServer) -> None:
    embedder = OpenAIEmbedder(
        openai_server.embedding_model, base_url=openai_server.base_url, api_key="test"
    )
    assert embedder.model_id == f"openai:{openai_server.embedding_model}"
    got = embedder.embed_documents(["alpha beta", "gamma", "alpha beta"])
    assert got.shape == (3, openai_server.embedding_dim)
    assert embedder.dim == openai_server.embedding_dim
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.allclose(got[0], got[2])
    assert np.allclose(embedder.embed_query("gamma"), got[1], atol=1e-6)
    assert embedder.embed_documents([]).shape == (0, openai_server.embedding_dim)
