"""txtai as its documentation sets up hybrid search with reranking: an `Embeddings` index with `hybrid=True`
(its BM25 terms index + a dense index, normalised-score fusion, dense weight 0.5), content stored, and a
`Reranker` pipeline over a cross-encoder `Similarity`.

Three settings are not txtai's defaults, all so that txtai does the same task as the others:
- vectors through sentence-transformers (`method`), which truncates at the model's 256 tokens; txtai's own
  transformers pooling would run MiniLM to 512 tokens;
- an exact FAISS index (`IDMap,Flat`). From 5,000 rows up txtai picks IVF with a few probes, and SciFact has
  5,183 documents: the others search exactly;
- truncation at 512 tokens in the cross-encoder (below).

An `Embeddings` object cannot be searched from two threads at once (its SQLite content store shares one
cursor: "Recursive use of cursors not allowed"), so searches take a lock; the cross-encoder runs outside it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from txtai import Embeddings
from txtai.pipeline import Reranker, Similarity

from peers.driver import ANSWER_K, RERANK_TOP_N, Inputs, main, read_corpus

PACKAGES = ("txtai", "sentence-transformers", "transformers", "torch", "faiss-cpu", "numpy")
# Hybrid score weight of the dense side for each mode (txtai's default is 0.5).
WEIGHTS = {"bm25": 0.0, "dense": 1.0, "hybrid": 0.5}


def build(inputs: Inputs, index: Path) -> dict[str, Any]:
    embeddings = Embeddings(
        path=inputs.embedder_torch,
        method="sentence-transformers",
        content=True,
        hybrid=True,
        faiss={"components": "IDMap,Flat"},
    )
    embeddings.index((r["_id"], r["content"], None) for r in read_corpus(inputs.corpus))
    embeddings.save(str(index / "embeddings"))
    return {}


class _Serialised:
    """The part of `Embeddings` the system and the `Reranker` call, one search at a time."""

    def __init__(self, embeddings: Embeddings) -> None:
        self.embeddings = embeddings
        self.lock = threading.Lock()

    def search(self, query: str, limit: int, weights: float | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.embeddings.search(query, limit, weights=weights))

    def batchsearch(
        self, queries: list[str], limit: int, *args: Any, **kwargs: Any
    ) -> list[list[dict[str, Any]]]:
        with self.lock:
            return list(self.embeddings.batchsearch(queries, limit, *args, **kwargs))


class TxtaiSystem:
    def __init__(self, inputs: Inputs, index: Path) -> None:
        embeddings = Embeddings()
        embeddings.load(str(index / "embeddings"))
        self.embeddings = _Serialised(embeddings)
        similarity = Similarity(inputs.reranker_torch, crossencode=True, gpu=False)
        # txtai's cross-encoder calls the transformers pipeline without truncation, so a (question, abstract)
        # pair over the model's 512 positions raises; every other system truncates at 512, so this one does too.
        similarity.crossencoder.pipeline._preprocess_params["truncation"] = True
        self.reranker = Reranker(self.embeddings, similarity)

    def retrieve(self, question: str, mode: str, k: int) -> list[str]:
        return [str(r["id"]) for r in self.embeddings.search(question, k, weights=WEIGHTS[mode])]

    def answer(self, question: str, rerank: bool) -> list[str]:
        if rerank:
            # The reranker searches limit × factor documents and scores them all.
            results = self.reranker(question, limit=ANSWER_K, factor=RERANK_TOP_N // ANSWER_K)
        else:
            results = self.embeddings.search(question, ANSWER_K)
        return [str(r["id"]) for r in results]


def load(inputs: Inputs, index: Path) -> TxtaiSystem:
    return TxtaiSystem(inputs, index)


if __name__ == "__main__":
    main(build, load, PACKAGES)
