from pathlib import Path

import numpy as np
import pytest

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


def test_files_hold_no_pickle(tmp_path: Path) -> None:
    write_bm25(tmp_path, TEXTS, [""] * 5, "english")
    for npy in tmp_path.glob("*.npy"):
        np.load(npy, allow_pickle=False)  # raises if an object array (pickle) were stored
