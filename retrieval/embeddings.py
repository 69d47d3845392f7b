"""Sentence embedders: local all-MiniLM-L6-v2 on onnxruntime, or an OpenAI-compatible endpoint.

Every embedder returns float32 rows of unit length, so cosine similarity is a dot product.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Encoding, Tokenizer

MINILM_DIM = 384


@runtime_checkable
class Embedder(Protocol):
    """What the retrieval code needs from an embedding model."""

    model_id: str  # recorded with the vector collection, e.g. "minilm-l6-v2"
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``(len(texts), dim)``, rows L2-normalised, in input order."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """float32 ``(dim,)``, L2-normalised."""
        ...


class EmbeddingUnavailable(RuntimeError):
    """The embedding model cannot be used as configured; the message says why, in one line."""


def _check_texts(texts: Sequence[str]) -> list[str]:
    # A bare string is a Sequence[str] too; embedding it character by character is never meant.
    if isinstance(texts, str):
        raise TypeError("embed_documents() takes a sequence of strings, not a single string")
    return list(texts)


def _normalise_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _default_threads() -> int:
    # The affinity mask honours taskset/cpusets; cpu_count() would count every host core.
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class LocalMiniLM:
    """all-MiniLM-L6-v2 run offline on onnxruntime (CPU), optionally int8-quantized.

    Construction is cheap: the ONNX file is built or found in ``cache_dir``, and the tokenizer
    and inference session are loaded, on first use (or by calling :meth:`load`).
    Safe to call from several threads at once.
    """

    dim: int = MINILM_DIM

    def __init__(
        self,
        cache_dir: Path,
        *,
        quantized: bool = False,
        batch_size: int = 32,
        threads: int | None = None,
        sort_by_length: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.cache_dir = Path(cache_dir)
        self.quantized = quantized
        self.batch_size = batch_size
        self.threads = threads or _default_threads()
        # Batching texts of similar length wastes less compute on padding tokens.
        self.sort_by_length = sort_by_length
        self.model_id = "minilm-l6-v2-int8" if quantized else "minilm-l6-v2"
        self.model_path: Path | None = None
        self._lock = threading.Lock()
        self._loaded: tuple[Tokenizer, onnxruntime.InferenceSession] | None = None

    def load(self) -> tuple[Tokenizer, onnxruntime.InferenceSession]:
        """Build or reuse the cached ONNX model and open the session (idempotent)."""
        if self._loaded is not None:
            return self._loaded
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            import onnxruntime as ort
            from tokenizers import Tokenizer

            from retrieval import minilm_onnx

            source = minilm_onnx.model_dir()
            cfg = minilm_onnx.BertConfig.from_dir(source)
            if cfg.hidden_size != self.dim:
                raise ValueError(f"expected a {self.dim}-d model, got {cfg.hidden_size}")
            try:
                model_path = minilm_onnx.ensure_model(self.cache_dir, quantized=self.quantized)
            except OSError as exc:
                if exc.filename is None:
                    raise
                raise EmbeddingUnavailable(f"cannot use the model folder {self.cache_dir}: "
                                           f"{exc.strerror or exc}") from exc

            tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
            # tokenizer.json ships with truncation at 128 and fixed padding to 128; the model
            # was trained for 256 tokens and padding is done per batch here.
            tokenizer.enable_truncation(max_length=cfg.max_seq_length)
            tokenizer.no_padding()

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            # Idle workers sleep instead of spinning: on a busy machine spinning doubled the
            # CPU time of a short batch (a question, ten sentences) and slowed it down; large
            # ingest batches keep their speed.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
            self.model_path = model_path
            # One assignment publishes both, so other threads never see half a load.
            self._loaded = (tokenizer, session)
            return self._loaded

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages; long ones are truncated to the model's 256 tokens."""
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokenizer, session = self.load()
        # The tokenizer is configured once in load() and only read afterwards, so threads can
        # share it; encode_batch releases the GIL and parallelises internally.
        encodings = tokenizer.encode_batch(items, add_special_tokens=True)
        if self.sort_by_length:
            order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        else:
            order = np.arange(len(items))
        out = np.empty((len(items), self.dim), dtype=np.float32)
        for start in range(0, len(items), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._run(session, [encodings[i] for i in rows])
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query string."""
        tokenizer, session = self.load()
        return self._run(session, [tokenizer.encode(text, add_special_tokens=True)])[0]

    @staticmethod
    def _run(session: onnxruntime.InferenceSession, encodings: Sequence[Encoding]) -> np.ndarray:
        """Pad to the longest encoding of this batch and run the model."""
        width = max(len(e.ids) for e in encodings)
        input_ids = np.zeros((len(encodings), width), dtype=np.int64)  # [PAD] is id 0
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            input_ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        (vectors,) = session.run(
            ["sentence_embedding"], {"input_ids": input_ids, "attention_mask": mask}
        )
        return np.asarray(vectors, dtype=np.float32)


class OpenAIEmbedder:
    """Embeddings from any OpenAI-compatible ``/embeddings`` endpoint, rows re-normalised.

    ``dim`` may be given; otherwise it is taken from the first response, and reading ``dim``
    before any call sends one short probe request.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        dim: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        batch_size: int = 64,
    ) -> None:
        # langchain_openai takes about two seconds to import; only pay that when used.
        from langchain_openai import OpenAIEmbeddings
        from pydantic import SecretStr

        key = api_key or os.environ.get("OPENAI_API_KEY") or "unused"  # local servers ignore it
        self.model_id = f"openai:{model}"
        self.base_url = base_url or "api.openai.com"
        self._dim = dim
        self._client = OpenAIEmbeddings(
            model=model,
            base_url=base_url,
            api_key=SecretStr(key),
            timeout=timeout,
            max_retries=max_retries,
            chunk_size=batch_size,
            # True would fetch a tiktoken vocabulary from the network to pre-split long inputs.
            check_embedding_ctx_length=False,
        )

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed_query("dimension probe")
        assert self._dim is not None
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._answering():
            vectors = self._client.embed_documents(items)
        return self._accept(np.asarray(vectors, dtype=np.float32))

    def embed_query(self, text: str) -> np.ndarray:
        with self._answering():
            vector = np.asarray(self._client.embed_query(text), dtype=np.float32)
        return self._accept(vector[None, :])[0]

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """The endpoint down or refusing: one line naming it, not the client's traceback."""
        from openai import APIError

        try:
            yield
        except APIError as exc:
            raise EmbeddingUnavailable(f"the embedding endpoint at {self.base_url} failed "
                                       f"({self.model_id}): {exc}") from exc

    def _accept(self, vectors: np.ndarray) -> np.ndarray:
        if vectors.ndim != 2:
            raise ValueError(f"unexpected embedding shape {vectors.shape} from {self.model_id}")
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise ValueError(
                f"{self.model_id} returned {vectors.shape[1]}-d vectors, expected {self._dim}"
            )
        return _normalise_rows(vectors)


class _LangChainEmbeddings(Embeddings):
    """LangChain view of an :class:`Embedder`."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text).tolist()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.embedder.model_id!r})"


def as_langchain(embedder: Embedder) -> Embeddings:
    """Wrap an embedder as ``langchain_core.embeddings.Embeddings`` (same vectors)."""
    return _LangChainEmbeddings(embedder)


__all__ = [
    "MINILM_DIM",
    "Embedder",
    "LocalMiniLM",
    "OpenAIEmbedder",
    "as_langchain",
]
