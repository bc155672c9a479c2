"""Vectors for `make bench-scale`: a real sample, and larger corpora drawn to match it.

Real: 100k texts of SciFact and SQuAD part A (every sentence, then every two and three adjacent sentences,
each as a bundle embeds a unit: "title. text"), embedded with the configured model (the Makefile's: int8
bge-small-en) through the embedding cache; the queries are SciFact's and SQuAD's real questions.

Synthetic: a Gaussian mixture fitted to the real sample — k-means centres weighted by their share, and around
each centre the residuals' own covariance (a full 384×384 estimate over all residuals, scaled per cluster to
that cluster's spread) — then L2-normalised. `fidelity()` says how close it comes: the cosines of real queries'
nearest neighbours in a real and a synthetic corpus of the same size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rag_testkit.samples import SHARED_DATA

from rag.config import BuildConfig, load_settings
from rag.corpus import segment_corpus
from rag.corpus.units import join_title
from rag.eval.datasets import load_beir, load_squad
from rag.index.embedding_cache import EmbeddingCache, embedder_namespace
from rag.models import load_embedder

__all__ = ["Mixture", "fidelity", "real_sample"]


def _texts(limit: int) -> tuple[list[str], list[str]]:
    """(unit texts, questions): windows of 1, 2 and 3 sentences, in that order, up to `limit`."""
    scifact = load_beir(SHARED_DATA / "scifact")
    squad = load_squad(SHARED_DATA / "squad-v1.1" / "dev-v1.1.part-a.json")
    documents = scifact.documents + squad.documents
    seg = segment_corpus(documents, BuildConfig())
    texts: list[str] = []
    for width in (1, 2, 3):
        for row in range(seg.n_sentences - width + 1):
            doc = int(seg.sent_doc[row])
            if int(seg.sent_doc[row + width - 1]) != doc:
                continue
            body = documents[doc].text[int(seg.sent_start[row]) : int(seg.sent_end[row + width - 1])]
            texts.append(join_title(documents[doc].title, body))
            if len(texts) == limit:
                return texts, _questions(scifact.queries, squad)
    return texts, _questions(scifact.queries, squad)


def _questions(scifact: dict[str, str], squad: object) -> list[str]:
    asked = list(scifact.values()) + [q.question for q in squad.questions]  # type: ignore[attr-defined]
    return list(dict.fromkeys(asked))


def real_sample(limit: int, cache_path: Path, queries: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(unit vectors [≤limit, dim], query vectors [queries, dim], model name). The cache is the bench's own:
    batches of 64 give vectors a little unlike the batch-of-one vectors builds store under the same keys."""
    settings = load_settings()
    embedder = load_embedder(settings)
    texts, questions = _texts(limit)
    rng = np.random.default_rng(0)
    questions = [questions[i] for i in sorted(rng.choice(len(questions), queries, replace=False))]
    with EmbeddingCache(cache_path) as cache:
        units = cache.encode(
            texts,
            embedder_namespace(embedder),
            embedder.identity.dim,
            lambda batch: embedder.encode(batch, kind="passage", batch_size=64, progress=True),
            prefix=embedder.identity.passage_prefix,
        )
    asked = embedder.encode(questions, kind="query", batch_size=64)
    return units, asked.astype(np.float32), embedder.name


@dataclass
class Mixture:
    centres: np.ndarray  # [k, dim]
    weights: np.ndarray  # [k], sums to 1
    scales: np.ndarray  # [k]: the cluster's residual spread relative to the whole sample's
    basis: np.ndarray  # [dim, dim]: the residual covariance's square root

    @classmethod
    def fit(cls, real: np.ndarray, clusters: int = 4096, seed: int = 0) -> Mixture:
        import faiss

        kmeans = faiss.Kmeans(real.shape[1], clusters, niter=20, seed=seed, spherical=False, verbose=False)
        kmeans.train(real)
        _, assigned = kmeans.index.search(real, 1)
        assigned = assigned[:, 0]
        residuals = real - kmeans.centroids[assigned]
        covariance = np.cov(residuals, rowvar=False)
        values, vectors = np.linalg.eigh(covariance)
        basis = vectors * np.sqrt(np.clip(values, 0, None))
        overall = float(np.sqrt((residuals**2).sum(axis=1).mean()))
        counts = np.bincount(assigned, minlength=clusters).astype(np.float64)
        spread = np.sqrt(
            np.bincount(assigned, (residuals**2).sum(axis=1), minlength=clusters) / np.maximum(counts, 1)
        )
        return cls(
            centres=kmeans.centroids.astype(np.float32),
            weights=counts / counts.sum(),
            scales=np.where(counts > 1, spread / overall, 1.0).astype(np.float32),
            basis=basis.astype(np.float32),
        )

    def draw(self, n: int, seed: int, out: np.ndarray | None = None, chunk: int = 200_000) -> np.ndarray:
        """n unit vectors, written in chunks into `out` (so 5M of them need no second copy)."""
        rng = np.random.default_rng(seed)
        out = np.empty((n, self.centres.shape[1]), dtype=np.float32) if out is None else out
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            which = rng.choice(len(self.weights), size, p=self.weights)
            noise = rng.standard_normal((size, self.basis.shape[0]), dtype=np.float32) @ self.basis.T
            block = self.centres[which] + self.scales[which, None] * noise
            out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out


def fidelity(real: np.ndarray, synthetic: np.ndarray, queries: np.ndarray, k: int = 10) -> dict[str, float]:
    """Mean cosine of real queries' 1st and k-th nearest neighbour in each corpus (same size): a synthetic
    corpus that is too spread out (or too tight) shows here."""
    import faiss

    out: dict[str, float] = {}
    for name, corpus in (("real", real), ("synthetic", synthetic)):
        scores, _ = faiss.knn(queries, corpus, k, metric=faiss.METRIC_INNER_PRODUCT)
        out[f"{name}_top1"] = float(scores[:, 0].mean())
        out[f"{name}_top{k}"] = float(scores[:, k - 1].mean())
        pairs = np.random.default_rng(1).integers(0, len(corpus), (20_000, 2))
        out[f"{name}_random_pair"] = float(
            np.einsum("ij,ij->i", corpus[pairs[:, 0]], corpus[pairs[:, 1]]).mean()
        )
    return out
