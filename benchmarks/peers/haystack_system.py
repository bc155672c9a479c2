"""Haystack 2.x as its hybrid-retrieval tutorial assembles it: an InMemoryDocumentStore, an in-memory BM25
retriever and an embedding retriever (sentence-transformers embedders), a DocumentJoiner with reciprocal rank
fusion, and a SentenceTransformersSimilarityRanker. Library defaults except where the task needs a value:
top_k, cosine similarity (the model card's), and the store's BM25 (its default, BM25L)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from haystack import Document, Pipeline
from haystack.components.embedders import (
    SentenceTransformersDocumentEmbedder,
    SentenceTransformersTextEmbedder,
)
from haystack.components.joiners import DocumentJoiner
from haystack.components.rankers import SentenceTransformersSimilarityRanker
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from peers.driver import ANSWER_K, CANDIDATES, RERANK_TOP_N, Inputs, main, read_corpus

PACKAGES = ("haystack-ai", "sentence-transformers", "transformers", "torch", "numpy")
STORE_FILE = "store.json"


def build(inputs: Inputs, index: Path) -> dict[str, Any]:
    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    indexing = Pipeline()
    indexing.add_component(
        "embedder", SentenceTransformersDocumentEmbedder(model=inputs.embedder_torch, progress_bar=False)
    )
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    documents = [Document(id=r["_id"], content=r["content"]) for r in read_corpus(inputs.corpus)]
    started = time.perf_counter()
    indexing.run({"embedder": {"documents": documents}})
    encode_s = time.perf_counter() - started  # the embedder's encode; the in-memory write is negligible
    store.save_to_disk(str(index / STORE_FILE))
    share_vectors(store, [d.id for d in documents], Path(inputs.vectors), encode_s)
    return {"encode_s": encode_s}


def share_vectors(store: InMemoryDocumentStore, ids: list[str], path: Path, encode_s: float) -> None:
    """The vectors in corpus order for the naive baseline (see Inputs.vectors), written atomically."""
    by_id = {d.id: d.embedding for d in store.filter_documents()}
    vectors = np.asarray([by_id[i] for i in ids], dtype=np.float32)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, ids=np.asarray(ids), vectors=vectors, encode_s=np.asarray(encode_s))
    os.replace(partial, path)


def retrieval_pipeline(store: InMemoryDocumentStore, inputs: Inputs, ranker: bool) -> Pipeline:
    """Embed → (BM25 ∥ embedding retrieval) → RRF join (→ cross-encoder ranker)."""
    pipeline = Pipeline()
    pipeline.add_component(
        "text_embedder", SentenceTransformersTextEmbedder(model=inputs.embedder_torch, progress_bar=False)
    )
    pipeline.add_component("embedding_retriever", InMemoryEmbeddingRetriever(store, top_k=CANDIDATES))
    pipeline.add_component("bm25_retriever", InMemoryBM25Retriever(store, top_k=CANDIDATES))
    pipeline.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion"))
    pipeline.connect("text_embedder.embedding", "embedding_retriever.query_embedding")
    pipeline.connect("bm25_retriever", "joiner")
    pipeline.connect("embedding_retriever", "joiner")
    if ranker:
        pipeline.add_component(
            "ranker", SentenceTransformersSimilarityRanker(model=inputs.reranker_torch, top_k=ANSWER_K)
        )
        pipeline.connect("joiner", "ranker")
    pipeline.warm_up()
    return pipeline


class HaystackSystem:
    def __init__(self, inputs: Inputs, index: Path) -> None:
        self.store = InMemoryDocumentStore.load_from_disk(str(index / STORE_FILE))
        self.hybrid = retrieval_pipeline(self.store, inputs, ranker=False)
        self.reranked = retrieval_pipeline(self.store, inputs, ranker=True)
        # Single-retriever reference modes call the components themselves.
        self.embedder = SentenceTransformersTextEmbedder(model=inputs.embedder_torch, progress_bar=False)
        self.embedder.warm_up()
        self.bm25 = InMemoryBM25Retriever(self.store)
        self.dense = InMemoryEmbeddingRetriever(self.store)

    def _run(self, question: str, k: int, rerank: bool) -> list[str]:
        data: dict[str, dict[str, Any]] = {
            "text_embedder": {"text": question},
            "bm25_retriever": {"query": question},
            "joiner": {"top_k": RERANK_TOP_N if rerank else k},
        }
        if rerank:
            data["ranker"] = {"query": question, "top_k": k}
            documents = self.reranked.run(data)["ranker"]["documents"]
        else:
            documents = self.hybrid.run(data)["joiner"]["documents"]
        return [d.id for d in documents]

    def retrieve(self, question: str, mode: str, k: int) -> list[str]:
        if mode == "hybrid":
            return self._run(question, k, rerank=False)
        if mode == "bm25":
            documents = self.bm25.run(query=question, top_k=k)["documents"]
        else:
            embedding = self.embedder.run(text=question)["embedding"]
            documents = self.dense.run(query_embedding=embedding, top_k=k)["documents"]
        return [d.id for d in documents]

    def answer(self, question: str, rerank: bool) -> list[str]:
        return self._run(question, ANSWER_K, rerank)


def load(inputs: Inputs, index: Path) -> HaystackSystem:
    return HaystackSystem(inputs, index)


if __name__ == "__main__":
    main(build, load, PACKAGES)
