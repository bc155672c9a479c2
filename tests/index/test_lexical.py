import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from rag.errors import BundleCorrupt
from rag.index.lexical import Bm25Index, Bm25Params, Tokenizer, write_bm25

TEXTS = [
    "Water boils at one hundred degrees at sea level.",
    "The boiling point of water falls with altitude.",
    "Cats sleep most of the day and cats purr.",
    "Dogs bark at the postman.",
    "Ice melts when water is warmed.",
]


def build(tmp_path: Path, texts: list[str], titles: list[str], params: Bm25Params) -> Bm25Index:
    write_bm25(tmp_path / "bm25", texts, titles, "english")
    return Bm25Index(tmp_path / "bm25", np.arange(len(texts), dtype=np.int32), params)


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (1.2, 0.3), (0.9, 1.0)])
def test_scores_equal_the_bm25s_library(tmp_path: Path, k1: float, b: float) -> None:
    import bm25s  # a dev dependency, installed by `make test`: the reference implementation
    import Stemmer

    index = build(tmp_path, TEXTS, [""] * len(TEXTS), Bm25Params(k1=k1, b=b, title_weight=0.0))
    stemmer = Stemmer.Stemmer("english")
    reference = bm25s.BM25(k1=k1, b=b, method="lucene")
    reference.index(
        bm25s.tokenize(TEXTS, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    for query in ["water boiling", "cats", "postman dogs barking", "unknownword"]:
        tokens = bm25s.tokenize(
            [query], stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False
        )[0]
        # bm25s' "lucene" variant drops the constant (k1 + 1) numerator; rankings are identical.
        expected = reference.get_scores(tokens) * (k1 + 1.0)
        np.testing.assert_allclose(index.scores(query), expected, rtol=1e-5, atol=1e-6)


def test_title_field_weight_is_applied_at_load(tmp_path: Path) -> None:
    titles = ["Boiling", "", "", "", ""]
    no_title = build(tmp_path / "a", TEXTS, titles, Bm25Params(title_weight=0.0))
    with_title = build(tmp_path / "b", TEXTS, titles, Bm25Params(title_weight=2.0))
    assert (
        with_title.scores("boiling")[0] > 0
        and with_title.scores("boiling")[0] > no_title.scores("boiling")[0]
    )


def test_tokenizer_stems_and_drops_stopwords() -> None:
    assert Tokenizer("english")("The cats were running to the Boiling water") == [
        "cat",
        "were",
        "run",
        "boil",
        "water",
    ]
    assert Tokenizer("none")("The cats") == ["cats"]


def test_chinese_japanese_and_korean_are_read_in_character_pairs() -> None:
    tokenize = Tokenizer("english")
    assert tokenize("本文档提供了 Debian 的问题。The cats") == [
        *["本文", "文档", "档提", "提供", "供了"],
        "debian",
        "的问",
        "问题",
        "cat",
    ]
    assert tokenize("この文書") == ["この", "の文", "文書"]
    assert tokenize("문장입니다 書") == ["문장", "장입", "입니", "니다", "書"]
    assert Tokenizer("english", cjk_bigrams=False)("本文档提供了 Debian") == ["本文档提供了", "debian"]


def test_a_chinese_query_finds_its_sentence_by_some_of_its_words(tmp_path: Path) -> None:
    texts = ["Debian 是一个自由的操作系统。", "软件包由维护者上传到归档。", "内核是系统的核心部分。"]
    index = build(tmp_path, texts, [""] * 3, Bm25Params())
    scores = index.scores("谁上传软件包？")
    assert int(np.argmax(scores)) == 1 and scores[0] == scores[2] == 0


def test_a_bundle_built_before_pairs_keeps_reading_runs_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Such a bundle's vocabulary holds whole runs, and its params.json says nothing of pairs: its queries are
    read as it was built, or they would match none of its Chinese."""
    import rag.index.lexical as lexical

    texts = ["软件包 上传", "内核 部分"]
    write_bm25(tmp_path / "new", texts, ["", ""], "english")
    assert json.loads((tmp_path / "new" / "params.json").read_text())["cjk"] == "bigrams"
    with monkeypatch.context() as m:  # as the code before pairs wrote it
        m.setattr(lexical, "Tokenizer", lambda stemmer, cjk_bigrams: Tokenizer(stemmer, cjk_bigrams=False))
        write_bm25(tmp_path / "old", texts, ["", ""], "english")
    params = json.loads((tmp_path / "old" / "params.json").read_text())
    (tmp_path / "old" / "params.json").write_text(json.dumps({k: params[k] for k in params if k != "cjk"}))
    old = Bm25Index(tmp_path / "old", np.arange(2, dtype=np.int32), Bm25Params())
    assert old.tokenizer.cjk_bigrams is False
    assert old.scores("软件包")[0] > 0 and old.scores("软件包")[1] == 0


def test_files_hold_no_pickle(tmp_path: Path) -> None:
    write_bm25(tmp_path, TEXTS, [""] * 5, "english")
    for npy in tmp_path.glob("*.npy"):
        np.load(npy, allow_pickle=False)  # raises if an object array (pickle) were stored


def write_version_1(folder: Path, texts: list[str], titles: list[str]) -> None:
    """The layout bundles of format version 1 hold: unit × term and document × term count matrices."""
    tokenize = Tokenizer("english")
    body, title = [tokenize(t) for t in texts], [tokenize(t) for t in titles]
    vocab = {t: i for i, t in enumerate(sorted({t for toks in body + title for t in toks}))}
    folder.mkdir(parents=True)
    for name, tokens in (("body", body), ("title", title)):
        counts = np.zeros((len(tokens), len(vocab)), dtype=np.float32)
        for row, words in enumerate(tokens):
            for word in words:
                counts[row, vocab[word]] += 1
        matrix = sp.csr_matrix(counts)
        matrix.indptr = matrix.indptr.astype(np.int64)
        for part in ("data", "indices", "indptr"):
            np.save(folder / f"{name}_{part}.npy", getattr(matrix, part))
    (folder / "vocab.json").write_text(json.dumps(sorted(vocab)))
    (folder / "params.json").write_text(
        json.dumps({"stemmer": "english", "n_units": len(texts), "n_docs": len(titles)})
    )


def reference_scores(
    texts: list[str], titles: list[str], unit_doc: np.ndarray, query: str, p: Bm25Params
) -> np.ndarray:
    """BM25 written out in float64 over dense count vectors, title counts added at their weight."""
    tokenize = Tokenizer("english")
    tf = [
        {
            t: tokenize(text).count(t) + p.title_weight * tokenize(titles[d]).count(t)
            for t in set(tokenize(text + " " + titles[d]))
        }
        for text, d in zip(texts, unit_doc, strict=True)
    ]
    lengths = np.array([sum(counts.values()) for counts in tf])
    out = np.zeros(len(texts))
    for term in tokenize(query):
        df = sum(1 for counts in tf if counts.get(term, 0) > 0)
        if not df:
            continue
        idf = np.log(1 + (len(texts) - df + 0.5) / (df + 0.5))
        for i, counts in enumerate(tf):
            f = counts.get(term, 0)
            norm = p.k1 * (1 - p.b + p.b * lengths[i] / lengths.mean())
            out[i] += idf * f * (p.k1 + 1) / (f + norm) if f else 0.0
    return out


UNITS = [*TEXTS, "Steam rises from boiling water.", "Cats chase mice at night."]
UNIT_DOC = np.array([0, 0, 1, 2, 3, 3, 4], dtype=np.int32)  # units grouped by document, several per document
DOC_TITLES = ["Boiling water", "Cats", "Dogs and cats", "Ice", "Mice"]
QUERIES = ["boiling water", "cats", "dogs cats mice", "ice melts", "unknownword", "water water"]


@pytest.mark.parametrize(
    "params", [Bm25Params(), Bm25Params(k1=0.9, b=0.4, title_weight=0.5), Bm25Params(title_weight=0.0)]
)
def test_title_weighted_scores_equal_bm25_written_out(tmp_path: Path, params: Bm25Params) -> None:
    write_bm25(tmp_path / "bm25", UNITS, DOC_TITLES, "english", UNIT_DOC)
    index = Bm25Index(tmp_path / "bm25", UNIT_DOC, params, n_docs=len(DOC_TITLES))
    for query in QUERIES:
        expected = reference_scores(UNITS, DOC_TITLES, UNIT_DOC, query, params)
        np.testing.assert_allclose(index.scores(query), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("params", [Bm25Params(), Bm25Params(title_weight=0.0)])
def test_a_version_1_bundle_scores_exactly_as_a_new_one(tmp_path: Path, params: Bm25Params) -> None:
    write_bm25(tmp_path / "new", UNITS, DOC_TITLES, "english", UNIT_DOC)
    write_version_1(tmp_path / "old", UNITS, DOC_TITLES)
    new = Bm25Index(tmp_path / "new", UNIT_DOC, params, n_docs=len(DOC_TITLES))
    old = Bm25Index(tmp_path / "old", UNIT_DOC, params, n_docs=len(DOC_TITLES))
    for query in QUERIES:
        assert np.array_equal(new.scores(query), old.scores(query))


def test_postings_are_mapped_not_copied(tmp_path: Path) -> None:
    write_bm25(tmp_path / "bm25", UNITS, DOC_TITLES, "english", UNIT_DOC)
    index = Bm25Index(tmp_path / "bm25", UNIT_DOC, Bm25Params(), n_docs=len(DOC_TITLES))
    mapped = {
        line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if str(tmp_path) in line
    }
    assert {Path(m).name for m in mapped} >= {"body_units.npy", "body_tf.npy", "title_docs.npy"}
    assert index.scores("boiling").max() > 0


def test_units_out_of_document_order_are_refused(tmp_path: Path) -> None:
    write_bm25(tmp_path / "bm25", UNITS, DOC_TITLES, "english", UNIT_DOC)
    with pytest.raises(BundleCorrupt, match="not grouped by document"):
        Bm25Index(tmp_path / "bm25", UNIT_DOC[::-1].copy(), Bm25Params(), n_docs=len(DOC_TITLES))
