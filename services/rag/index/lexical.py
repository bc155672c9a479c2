"""BM25 over retrieval units, stored as plain arrays (no pickle).

The bundle stores raw term counts (units × terms for the body, documents × terms for the title). BM25
weights are computed when the index is loaded, so k1, b and the title weight are load-time settings: tuning
them needs no rebuild. Scoring is a sparse column gather: O(postings of the query terms).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..config import Bm25Params
from ..errors import BundleCorrupt
from .validate import check_csr

__all__ = ["Bm25Index", "Bm25Params", "Tokenizer", "write_bm25"]

# bm25s' English stop words (its default), so BM25 numbers compare with the bm25s reference row.
STOPWORDS_EN = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


class Tokenizer:
    """Lowercase, scikit-learn token pattern, stop words, Snowball stemming (as bm25s does)."""

    def __init__(self, stemmer: str = "english") -> None:
        self.stemmer_name = stemmer
        if stemmer == "none":
            self._stem = None
        else:
            import Stemmer

            self._stem = Stemmer.Stemmer(stemmer)
        self._cache: dict[str, str] = {}

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS_EN]
        if self._stem is None:
            return words
        cache = self._cache
        missing = [w for w in set(words) if w not in cache]
        if missing:
            for word, stem in zip(missing, self._stem.stemWords(missing), strict=True):
                cache[word] = stem
            if len(cache) > 500_000:  # a server sees unbounded vocabularies; keep the memo bounded
                cache.clear()
                return self(text)
        return [cache[w] for w in words]


def _count_matrix(token_lists: list[list[str]], vocab: dict[str, int]) -> sp.csr_matrix:
    indptr = [0]
    indices: list[int] = []
    data: list[int] = []
    for tokens in token_lists:
        counts: dict[int, int] = {}
        for token in tokens:
            col = vocab[token]
            counts[col] = counts.get(col, 0) + 1
        for col in sorted(counts):
            indices.append(col)
            data.append(counts[col])
        indptr.append(len(indices))
    return sp.csr_matrix(
        (
            np.asarray(data, dtype=np.float32),
            np.asarray(indices, dtype=np.int32),
            np.asarray(indptr, dtype=np.int64),
        ),
        shape=(len(token_lists), len(vocab)),
    )


def write_bm25(out_dir: Path, unit_texts: list[str], doc_titles: list[str], stemmer: str) -> None:
    """Write body (units × terms) and title (documents × terms) count matrices and the vocabulary."""
    tokenize = Tokenizer(stemmer)
    body_tokens = [tokenize(t) for t in unit_texts]
    title_tokens = [tokenize(t) for t in doc_titles]
    terms = sorted({t for toks in body_tokens for t in toks} | {t for toks in title_tokens for t in toks})
    vocab = {term: i for i, term in enumerate(terms)}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, matrix in (
        ("body", _count_matrix(body_tokens, vocab)),
        ("title", _count_matrix(title_tokens, vocab)),
    ):
        np.save(out_dir / f"{name}_data.npy", matrix.data)
        np.save(out_dir / f"{name}_indices.npy", matrix.indices)
        np.save(out_dir / f"{name}_indptr.npy", matrix.indptr)
    (out_dir / "vocab.json").write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")
    (out_dir / "params.json").write_text(
        json.dumps(
            {"stemmer": stemmer, "n_units": len(unit_texts), "n_docs": len(doc_titles)}, sort_keys=True
        )
    )


def _load_csr(folder: Path, name: str, shape: tuple[int, int]) -> sp.csr_matrix:
    def arr(part: str) -> np.ndarray:
        return np.load(folder / f"{name}_{part}.npy", allow_pickle=False)

    data, indices, indptr = arr("data"), arr("indices"), arr("indptr")
    check_csr(f"{folder.name}/{name}_*.npy", data, indices, indptr, shape)
    return sp.csr_matrix((data, indices, indptr), shape=shape)


class Bm25Index:
    """Scores every unit for a query (so filters apply before top-k, never after truncation)."""

    def __init__(
        self, folder: Path, unit_doc: np.ndarray, params: Bm25Params, n_docs: int | None = None
    ) -> None:
        meta: dict[str, Any] = json.loads((folder / "params.json").read_text())
        terms: list[str] = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        if meta["n_units"] != len(unit_doc) or (n_docs is not None and meta["n_docs"] != n_docs):
            raise BundleCorrupt(
                f"{folder.name}/params.json: {meta['n_units']} units and {meta['n_docs']} documents, the store "
                f"has {len(unit_doc)} and {n_docs}"
            )
        self.vocab = {term: i for i, term in enumerate(terms)}
        self.tokenizer = Tokenizer(meta["stemmer"])
        self.params = params
        shape_terms = len(terms)
        body = _load_csr(folder, "body", (meta["n_units"], shape_terms))
        title = _load_csr(folder, "title", (meta["n_docs"], shape_terms))
        counts = body + params.title_weight * title[unit_doc] if params.title_weight else body
        counts = sp.csr_matrix(counts, dtype=np.float32)
        self.n_units = counts.shape[0]
        lengths = np.asarray(counts.sum(axis=1)).ravel()
        avg = float(lengths.mean()) if self.n_units else 1.0
        df = np.bincount(counts.indices, minlength=shape_terms).astype(np.float64)
        # Lucene's idf (always positive), as bm25s' default "lucene" method.
        self.idf = np.log(1.0 + (self.n_units - df + 0.5) / (df + 0.5)).astype(np.float32)
        row_norm = params.k1 * (1.0 - params.b + params.b * lengths / max(avg, 1e-9))
        tf = counts.data
        rows = np.repeat(np.arange(self.n_units), np.diff(counts.indptr))
        weights = tf * (params.k1 + 1.0) / (tf + row_norm[rows])
        weighted = sp.csr_matrix(
            (weights.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape
        )
        self._columns = weighted.tocsc()  # term-major: a query gathers its terms' postings

    def query_terms(self, text: str) -> np.ndarray:
        ids = [self.vocab[t] for t in self.tokenizer(text) if t in self.vocab]
        return np.asarray(ids, dtype=np.int64)

    def scores(self, text: str) -> np.ndarray:
        """BM25 score of every unit (float32 [n_units]); zeros when no query term is known."""
        out = np.zeros(self.n_units, dtype=np.float32)
        cols = self._columns
        for term in self.query_terms(text):
            lo, hi = cols.indptr[term], cols.indptr[term + 1]
            out[cols.indices[lo:hi]] += self.idf[term] * cols.data[lo:hi]
        return out
