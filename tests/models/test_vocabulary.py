import pytest

from rag.models.vocabulary import unread_share


@pytest.mark.parametrize(
    ("pieces", "share"),
    [
        (["water", "boil", "##s", "at", "100", "degrees", "."], 1 / 5),  # "##s" is one letter; "100" none
        (["э", "##т", "##о", "па", "##к", "##е", "##т"], 6 / 7),  # Russian, spelt by an English vocabulary
        (["[UNK]", "文", "[UNK]", "档"], 2 / 4),  # a Han character is a word; an unknown one is not read
        (["▁это", "▁пакет", "▁", "э"], 1 / 3),  # SentencePiece: "▁" alone holds no letter
        ([".", "100"], 0.0),
    ],
    ids=["english", "russian-in-an-english-vocabulary", "chinese", "sentencepiece", "no-letters"],
)
def test_unread_share_counts_single_letters_and_unknown_pieces(pieces: list[str], share: float) -> None:
    assert unread_share(pieces, "[UNK]") == pytest.approx(share)


def test_both_backends_measure_what_their_vocabulary_reads(embedder) -> None:
    """The ONNX bge-small-en the defaults serve, and all-MiniLM-L6-v2 through torch (another English
    WordPiece vocabulary): English is read in words, Russian letter by letter."""
    from rag.config import Settings
    from rag.models import OFFLINE_MINILM, load_embedder

    torch_minilm = load_embedder(
        Settings(embedding_model=OFFLINE_MINILM, backend="torch", reranker_model="", threads=1)
    )
    english = ["Water boils at one hundred degrees at sea level.", "Cats sleep most of the day."]
    russian = ["Вода кипит при ста градусах на уровне моря.", "Кошки спят большую часть дня."]
    for model in (embedder, torch_minilm):
        assert model.unread_share(english) < 0.15 < 0.5 < model.unread_share(russian)
