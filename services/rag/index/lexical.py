"""BM25 over retrieval units, stored as plain arrays (no pickle).

The bundle stores raw term counts, term-major (each term's units, and each term's title documents), with unit
and title lengths and document frequencies. BM25 weights are applied at query time to the postings a query
reads, so k1, b and the title weight are load-time settings (tuning needs no rebuild) and the arrays are
memory-mapped as they lie, shared by a pod's workers. Scoring is O(postings of the query terms).
"""

from __future__ import annotations

import json
import re
from array import array as typed_array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from ..config import Bm25Params
from ..corpus.scripts import BIGRAM_CHARS
from ..errors import BundleCorrupt
from .mapped import map_npy, release
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
_BIGRAM_RUN = re.compile(f"[{BIGRAM_CHARS}]+")
# Runs of the scripts read in pairs, and words of two or more other word characters.
_RUN_OR_WORD = re.compile(rf"[{BIGRAM_CHARS}]+|[^\W{BIGRAM_CHARS}]{{2,}}")


def _bigrams(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


class Tokenizer:
    """Lowercase, scikit-learn token pattern, stop words, Snowball stemming (as bm25s does).

    `cjk_bigrams`: Chinese, Japanese and Korean are read as overlapping character pairs ("文档提供" → 文档,
    档提, 提供), as Lucene's CJK analyzer does; without it a run of them is one token, which no query matches
    unless it repeats the run whole. Bundles record which way they were built (BM25 `params.json`), so one
    built before the pairs keeps its own tokens."""

    def __init__(self, stemmer: str = "english", *, cjk_bigrams: bool = True) -> None:
        self.stemmer_name = stemmer
        self.cjk_bigrams = cjk_bigrams
        if stemmer == "none":
            self._stem = None
        else:
            import Stemmer

            self._stem = Stemmer.Stemmer(stemmer)
        self._cache: dict[str, str] = {}

    def _words(self, text: str) -> list[str]:
        if not (self.cjk_bigrams and _BIGRAM_RUN.search(text)):
            return _TOKEN.findall(text)
        words: list[str] = []
        for token in _RUN_OR_WORD.findall(text):
            words += _bigrams(token) if _BIGRAM_RUN.match(token) else [token]
        return words

    def __call__(self, text: str) -> list[str]:
        words = [w for w in self._words(text.lower()) if w not in STOPWORDS_EN]
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


class _CountRows:
    """A term-count matrix built row by row into typed arrays, its terms numbered as first seen: no token
    lists are kept, so a build's memory for BM25 is ~8 bytes per posting (10M units hold ~150M) rather
    than a Python object per token."""

    def __init__(self, ids: dict[str, int]) -> None:
        self.ids = ids  # shared by the body and the titles: one numbering
        self.indptr = typed_array("q", [0])
        self.indices = typed_array("i")
        self.data = typed_array("f")

    def add(self, tokens: list[str]) -> None:
        counts = Counter(self.ids.setdefault(token, len(self.ids)) for token in tokens)
        self.indices.extend(counts.keys())
        self.data.extend(counts.values())
        self.indptr.append(len(self.indices))

    def matrix(self, rank: np.ndarray) -> sp.csr_matrix:
        """The counts with each term's column its `rank` (its place in the sorted vocabulary). Called once:
        the first-seen column ids are dropped once renumbered."""
        columns = rank[np.frombuffer(self.indices, dtype=np.int32)]
        self.indices = typed_array("i")
        counts = sp.csr_matrix(
            (np.frombuffer(self.data, dtype=np.float32), columns, np.frombuffer(self.indptr, dtype=np.int64)),
            shape=(len(self.indptr) - 1, len(rank)),
        )
        counts.sort_indices()
        return counts


def write_bm25(
    out_dir: Path,
    unit_texts: Iterable[str],
    doc_titles: list[str],
    stemmer: str,
    unit_doc: np.ndarray | None = None,
) -> None:
    """Term-major postings of the body (units, read once) and the titles (documents), lengths, document
    frequencies and the vocabulary. `unit_doc`: each unit's document row (default: one unit per document)."""
    tokenize = Tokenizer(stemmer, cjk_bigrams=True)
    ids: dict[str, int] = {}
    body, titles = _CountRows(ids), _CountRows(ids)
    for text in unit_texts:
        body.add(tokenize(text))
    for title in doc_titles:
        titles.add(tokenize(title))
    terms = sorted(ids)
    rank = np.empty(len(terms), dtype=np.int32)
    rank[[ids[term] for term in terms]] = np.arange(len(terms), dtype=np.int32)
    n_units = len(body.indptr) - 1
    unit_doc = np.arange(n_units) if unit_doc is None else unit_doc
    postings = _Postings.from_counts(body.matrix(rank), titles.matrix(rank), unit_doc)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in _Postings.FILES:
        np.save(out_dir / f"{name}.npy", getattr(postings, name))
    (out_dir / "vocab.json").write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")
    (out_dir / "params.json").write_text(
        json.dumps(
            {"stemmer": stemmer, "cjk": "bigrams", "n_units": n_units, "n_docs": len(doc_titles)},
            sort_keys=True,
        )
    )


@dataclass(frozen=True)
class _Postings:
    """Raw counts, term-major: what a query reads (its terms' postings) lies together, and k1, b and the title
    weight are applied at query time, so a bundle's arrays are memory-mapped as they are, shared by a pod's
    workers through the page cache, and tuning needs no rebuild."""

    body_offsets: np.ndarray  # [terms + 1]: term t's body postings are [offsets[t], offsets[t + 1])
    body_units: np.ndarray  # unit rows, ascending within a term
    body_tf: np.ndarray  # float32 term counts
    title_offsets: np.ndarray
    title_docs: np.ndarray  # document rows
    title_tf: np.ndarray
    unit_length: np.ndarray  # float32 body tokens per unit
    title_length: np.ndarray  # float32 title tokens per document
    df_titled: np.ndarray  # units holding the term in their body or their document's title

    FILES: ClassVar[tuple[str, ...]] = (
        "body_offsets",
        "body_units",
        "body_tf",
        "title_offsets",
        "title_docs",
        "title_tf",
        "unit_length",
        "title_length",
        "df_titled",
    )

    @classmethod
    def from_counts(cls, body: sp.csr_matrix, title: sp.csr_matrix, unit_doc: np.ndarray) -> _Postings:
        body_terms, title_terms = body.tocsc(), title.tocsc()
        body_terms.sort_indices()
        title_terms.sort_indices()
        titled = (body + title[unit_doc]).tocsr()
        return cls(
            # copy=False: at 10M units each posting array is ~0.6 GB, and the build's head holds them all
            body_offsets=body_terms.indptr.astype(np.int64, copy=False),
            body_units=body_terms.indices.astype(np.int32, copy=False),
            body_tf=body_terms.data.astype(np.float32, copy=False),
            title_offsets=title_terms.indptr.astype(np.int64, copy=False),
            title_docs=title_terms.indices.astype(np.int32, copy=False),
            title_tf=title_terms.data.astype(np.float32, copy=False),
            unit_length=np.asarray(body.sum(axis=1), dtype=np.float32).ravel(),
            title_length=np.asarray(title.sum(axis=1), dtype=np.float32).ravel(),
            df_titled=np.bincount(titled.indices, minlength=body.shape[1]).astype(np.int64),
        )

    @classmethod
    def read(cls, folder: Path, unit_doc: np.ndarray, n_terms: int, n_docs: int) -> _Postings:
        if (folder / "body_offsets.npy").exists():
            return cls._mapped(folder, len(unit_doc), n_terms, n_docs)
        # A bundle from before the term-major layout: its unit × term counts, converted in memory.
        body = _load_csr(folder, "body", (len(unit_doc), n_terms))
        return cls.from_counts(body, _load_csr(folder, "title", (n_docs, n_terms)), unit_doc)

    @classmethod
    def _mapped(cls, folder: Path, n_units: int, n_terms: int, n_docs: int) -> _Postings:
        arrays = {name: map_npy(folder / f"{name}.npy") for name in cls.FILES}
        where = f"{folder.name}/"
        check_csr(
            f"{where}body_*.npy",
            arrays["body_tf"],
            arrays["body_units"],
            arrays["body_offsets"],
            (n_terms, n_units),
        )
        check_csr(
            f"{where}title_*.npy",
            arrays["title_tf"],
            arrays["title_docs"],
            arrays["title_offsets"],
            (n_terms, n_docs),
        )
        for name, rows in (("unit_length", n_units), ("title_length", n_docs), ("df_titled", n_terms)):
            values = arrays[name]
            if values.shape != (rows,) or not np.all(np.isfinite(values)) or np.any(values < 0):
                raise BundleCorrupt(f"{where}{name}.npy: expected {rows} finite, non-negative values")
        if len(arrays["df_titled"]) and int(arrays["df_titled"].max()) > n_units:
            raise BundleCorrupt(f"{where}df_titled.npy: a term in more units than there are")
        for array in arrays.values():
            release(array)  # the checks read every page; a query reads its terms' postings only
        return cls(**arrays)


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
        if len(unit_doc) and (np.any(np.diff(unit_doc) < 0) or int(unit_doc.max()) >= meta["n_docs"]):
            raise BundleCorrupt(f"{folder.name}: units are not grouped by document in order")
        self.vocab = {term: i for i, term in enumerate(terms)}
        # A bundle from before CJK pairs has no "cjk" and was built with runs whole: its queries must be too.
        self.tokenizer = Tokenizer(meta["stemmer"], cjk_bigrams=meta.get("cjk") == "bigrams")
        self.params = params
        self.n_units = len(unit_doc)
        self._postings = _Postings.read(folder, unit_doc, len(terms), meta["n_docs"])
        self._doc_units = np.searchsorted(unit_doc, np.arange(meta["n_docs"] + 1)).astype(np.int64)
        self._weigh(unit_doc)

    def _weigh(self, unit_doc: np.ndarray) -> None:
        """Per-unit length norms and per-term idf: small arrays, computed from the raw counts at load."""
        p, params = self._postings, self.params
        lengths = p.unit_length
        if params.title_weight:
            lengths = lengths + np.float32(params.title_weight) * p.title_length[unit_doc]
        avg = float(lengths.mean()) if self.n_units else 1.0
        self._row_norm = params.k1 * (1.0 - params.b + params.b * lengths / max(avg, 1e-9))
        df = (p.df_titled if params.title_weight else np.diff(p.body_offsets)).astype(np.float64)
        # Lucene's idf (always positive), as bm25s' default "lucene" method.
        self.idf = np.log(1.0 + (self.n_units - df + 0.5) / (df + 0.5)).astype(np.float32)

    def query_terms(self, text: str) -> np.ndarray:
        ids = [self.vocab[t] for t in self.tokenizer(text) if t in self.vocab]
        return np.asarray(ids, dtype=np.int64)

    def scores(self, text: str) -> np.ndarray:
        """BM25 score of every unit (float32 [n_units]); zeros when no query term is known."""
        out = np.zeros(self.n_units, dtype=np.float32)
        terms = self.query_terms(text)
        if not len(terms):
            return out
        units, tf, bounds = self._counts(terms)
        weights = tf * (self.params.k1 + 1.0) / (tf + self._row_norm[units])
        # Term by term, in float32: the sums come out exactly as they did when weights were precomputed.
        for i, term in enumerate(terms):
            lo, hi = bounds[i], bounds[i + 1]
            out[units[lo:hi]] += self.idf[term] * weights[lo:hi]
        return out

    def _counts(self, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(units, count) of every query term's units, grouped by term — term i's are [bounds[i],
        bounds[i + 1]) — with title counts added at their weight. All terms at once: per-term numpy calls
        cost more than the arithmetic on a corpus of SciFact's size."""
        p, n = self._postings, max(self.n_units, 1)
        units, tf, group = _gather(p.body_offsets, terms, p.body_units, p.body_tf)
        weight = self.params.title_weight
        if weight:
            docs, title_tf, title_group = _gather(p.title_offsets, terms, p.title_docs, p.title_tf)
            first = self._doc_units[docs]
            count = self._doc_units[docs + 1] - first
            titled = _runs(first, count)
            titled_tf = np.repeat(np.float32(weight) * title_tf, count)
            titled_group = np.repeat(title_group, count)
            # Both key lists ascend: find each body posting among the titled ones instead of sorting.
            key, titled_key = group * n + units, titled_group * n + titled
            at = np.minimum(np.searchsorted(titled_key, key), max(len(titled_key) - 1, 0))
            both = titled_key[at] == key if len(titled_key) else np.zeros(len(key), dtype=bool)
            titled_tf[at[both]] += tf[both]
            group = np.concatenate((titled_group, group[~both]))
            order = np.argsort(group, kind="stable")
            units = np.concatenate((titled, units[~both]))[order]
            tf = np.concatenate((titled_tf, tf[~both]))[order]
            group = group[order]
        bounds = np.searchsorted(group, np.arange(len(terms) + 1))
        return units, tf, bounds


def _runs(first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """first[0] .. first[0] + count[0] - 1, first[1] .., concatenated."""
    return np.repeat(first - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))


def _gather(
    offsets: np.ndarray, terms: np.ndarray, rows: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The postings of each term in turn: (rows, counts, the index in `terms` each came from)."""
    lo = offsets[terms]
    length = offsets[terms + 1] - lo
    positions = _runs(lo, length)
    return rows[positions], counts[positions], np.repeat(np.arange(len(terms)), length)
