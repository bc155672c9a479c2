import pytest

from rag.config import BuildConfig
from rag.corpus import Document, segment_corpus
from rag.corpus.formats.base import TextLayout
from rag.corpus.scripts import count_words, joins_without_space


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Water boils at 100 degrees.", 5),
        ("使用 Autotools 或CMake来构建。", 8),  # 6 characters, 2 Latin words; "。" is not a word
        ("この文書は Debian の", 7),
        ("한국어 문장입니다.", 2),  # Korean is written with spaces
        ("", 0),
    ],
)
def test_words_count_chinese_and_japanese_characters_one_each(text: str, words: int) -> None:
    assert count_words(text) == words


def test_passages_of_chinese_hold_about_the_words_asked_for() -> None:
    """Before, a Chinese sentence counted as one word (no spaces), so a 'passage' swallowed a whole page."""
    sentence = "这是一个关于软件包管理的句子。"  # 14 characters
    doc = Document(id="zh", title="", text=sentence * 40)
    seg = segment_corpus([doc], BuildConfig(unit="passage", passage_tokens=60))
    sentences_per_unit = (seg.unit_last - seg.unit_first).tolist()
    assert seg.n_sentences == 40 and max(sentences_per_unit) == 4 and len(sentences_per_unit) == 10


@pytest.mark.parametrize(
    ("left", "right", "joined"),
    [
        ("类似于随机的代号字", "符串，或者", True),
        ("インストールされ", "たファイル", True),
        ("上游版本，比如", "20110429", False),
        ("upstream", "version", False),
        ("结束。", "下一段", True),
    ],
)
def test_lines_of_chinese_and_japanese_run_on_without_a_space(left: str, right: str, joined: bool) -> None:
    assert joins_without_space(left, right) is joined
    layout = TextLayout()
    layout.add(left, "paragraph")
    layout.extend(right)  # a paragraph running on over a PDF page break
    assert layout.document("x", "", {}).text == (left + right if joined else f"{left} {right}")
