"""The naive baseline, as a reference design would write it: sentence-transformers (torch fp32), FAISS flat
inner product, rank_bm25 over lower-cased word tokens, min-max convex fusion (α = 0.5), a sentence-transformers
CrossEncoder over the top 20; no caching, library defaults for threads and batch sizes."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from rank_bm25 import BM25Okapi
from sentence_transformers import CrossEncoder, SentenceTransformer

from peers.driver import ANSWER_K, CANDIDATES, RERANK_TOP_N, Inputs, main, read_corpus

PACKAGES = ("sentence-transformers", "transformers", "torch", "faiss-cpu", "rank-bm25", "numpy")
ALPHA = 0.5  # dense weight: the textbook default when nothing was tuned
_WORD = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def build(inputs: Inputs, index: Path) -> dict[str, Any]:
    rows = read_corpus(inputs.corpus)
    texts = [r["content"] for r in rows]
    out: dict[str, Any] = {}
    shared = Path(inputs.vectors)
    if shared.is_file():  # Haystack's encode of the same texts with the same model (driver.Inputs.vectors)
        with np.load(shared, allow_pickle=False) as saved:
            if saved["ids"].tolist() != [r["_id"] for r in rows]:
                raise SystemExit(f"{shared}: not this corpus's documents")
            vectors = saved["vectors"] / np.linalg.norm(saved["vectors"], axis=1, keepdims=True)
            out = {"vectors_from": shared.name, "borrowed_encode_s": float(saved["encode_s"])}
    else:
        model = SentenceTransformer(inputs.embedder_torch, device="cpu")
        vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    dense = faiss.IndexFlatIP(vectors.shape[1])
    dense.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(dense, str(index / "dense.faiss"))
    with (index / "bm25.pkl").open("wb") as handle:
        pickle.dump(BM25Okapi([tokenize(t) for t in texts]), handle)
    (index / "docs.json").write_text(json.dumps({"ids": [r["_id"] for r in rows], "texts": texts}))
    return out


def _minmax(scores: np.ndarray) -> np.ndarray:
    span = float(scores.max() - scores.min()) if len(scores) else 0.0
    return (scores - scores.min()) / span if span > 0 else np.ones_like(scores)


class NaiveSystem:
    def __init__(self, inputs: Inputs, index: Path) -> None:
        docs = json.loads((index / "docs.json").read_text())
        self.ids: list[str] = docs["ids"]
        self.texts: list[str] = docs["texts"]
        self.dense = faiss.read_index(str(index / "dense.faiss"))
        with (index / "bm25.pkl").open("rb") as handle:
            self.bm25: BM25Okapi = pickle.load(handle)
        self.model = SentenceTransformer(inputs.embedder_torch, device="cpu")
        self.reranker = CrossEncoder(inputs.reranker_torch, device="cpu")

    def _bm25(self, question: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.bm25.get_scores(tokenize(question))
        top = np.argsort(-scores, kind="stable")[:k]
        return top, scores[top]

    def _dense(self, question: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        query = self.model.encode([question], normalize_embeddings=True, convert_to_numpy=True)
        scores, top = self.dense.search(np.asarray(query, dtype=np.float32), k)
        return top[0], scores[0]

    def _hybrid(self, question: str, k: int) -> list[int]:
        fused: dict[int, float] = {}
        for weight, (docs, scores) in (
            (1.0 - ALPHA, self._bm25(question, CANDIDATES)),
            (ALPHA, self._dense(question, CANDIDATES)),
        ):
            for doc, score in zip(docs.tolist(), _minmax(scores).tolist(), strict=True):
                fused[doc] = fused.get(doc, 0.0) + weight * score
        return sorted(fused, key=lambda d: -fused[d])[:k]

    def retrieve(self, question: str, mode: str, k: int) -> list[str]:
        if mode == "hybrid":
            top = self._hybrid(question, k)
        else:
            top = (self._bm25 if mode == "bm25" else self._dense)(question, k)[0].tolist()
        return [self.ids[i] for i in top]

    def answer(self, question: str, rerank: bool) -> list[str]:
        if not rerank:
            return [self.ids[i] for i in self._hybrid(question, ANSWER_K)]
        head = self._hybrid(question, RERANK_TOP_N)
        scores = self.reranker.predict([(question, self.texts[i]) for i in head])
        order = np.argsort(-np.asarray(scores), kind="stable")[:ANSWER_K]
        return [self.ids[head[i]] for i in order]


def load(inputs: Inputs, index: Path) -> NaiveSystem:
    return NaiveSystem(inputs, index)


if __name__ == "__main__":
    main(build, load, PACKAGES)
