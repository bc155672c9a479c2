import json
import re
from pathlib import Path

import pytest
from rag_testkit.samples import write_corpus

from rag.corpus import corpus_id, load_corpus
from rag.errors import CorpusError


def test_loads_every_format_with_titles_and_metadata(corpus_dir: Path) -> None:
    documents, report = load_corpus(corpus_dir)
    by_id = {d.id: d for d in documents}
    assert set(by_id) == {"cats.html", "paris.md", "water.txt", "photo", "roots"}
    assert by_id["paris.md"].title == "Paris"
    assert by_id["water.txt"].title == "water"
    cats = by_id["cats.html"]
    assert cats.title == "Cats"
    assert "Cats sleep most of the day." in cats.text and "<p>" not in cats.text
    assert "color: red" not in cats.text and "var x" not in cats.text
    assert by_id["roots"].metadata == {"source": "plants.jsonl", "tags": ["biology", "botany"]}
    assert report.warnings == []


def test_beir_corpus_jsonl_uses_underscore_id(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "d1", "title": "T", "text": "Some text.", "metadata": {}}\n')
    documents, _ = load_corpus(path)
    assert documents[0].id == "d1" and documents[0].title == "T"


BEIR_QUERIES = '{"_id": "q1", "text": "What do roots absorb?", "metadata": {}}\n'


def test_a_beir_dataset_folder_is_read_as_its_corpus_jsonl(tmp_path: Path) -> None:
    """BEIR's own layout: indexing its queries.jsonl too would answer each question with itself."""
    write_corpus(
        tmp_path,
        {
            "corpus.jsonl": '{"_id": "d1", "title": "Roots", "text": "Roots absorb water.", "metadata": {}}\n',
            "queries.jsonl": BEIR_QUERIES,
            "notes.md": "# Notes\n\nNot part of the dataset's corpus.",
        },
    )
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    documents, report = load_corpus(tmp_path)
    assert [d.id for d in documents] == ["d1"]
    assert {s["source"] for s in report.skipped} == {"notes.md", "queries.jsonl"}
    assert all("corpus.jsonl" in s["reason"] and "rag eval" in s["reason"] for s in report.skipped)


def test_a_folder_with_corpus_jsonl_but_no_queries_is_an_ordinary_corpus(tmp_path: Path) -> None:
    write_corpus(
        tmp_path,
        {"corpus.jsonl": '{"_id": "d1", "text": "Roots absorb water."}\n', "more.txt": "Leaves make sugar."},
    )
    documents, report = load_corpus(tmp_path)
    assert sorted(d.id for d in documents) == ["d1", "more.txt"] and report.skipped == []


def test_files_of_types_not_read_are_counted_in_one_warning(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"a.txt": "Real text.", "b.rst": "Title\n=====", "Makefile": "all:"}
    files |= {f"img{i}.png": b"\x89PNG" for i in range(3)}
    write_corpus(tmp_path, files | {".hidden.csv": "a,b"})
    documents, report = load_corpus(tmp_path)
    assert [d.id for d in documents] == ["a.txt"] and report.skipped == []
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith(
        "passed over 5 file(s) of types not read: .png ×3, (no extension) ×1, .rst ×1 ("
    )
    many = write_corpus(tmp_path / "many", {"a.txt": "Real text."} | {f"f{i}.x{i}": "x" for i in range(10)})
    assert (
        load_corpus(many)[1]
        .warnings[0]
        .startswith(
            "passed over 10 file(s) of types not read: .x0 ×1, .x1 ×1, .x2 ×1, .x3 ×1, .x4 ×1, .x5 ×1, .x6 ×1, "
            ".x7 ×1 and 2 other types ("
        )
    )


def test_a_corpus_left_empty_by_its_limits_says_which_setting_to_raise(tmp_path: Path) -> None:
    """`rag build` prints its warnings only after loading: the error itself must say why nothing was left."""
    from rag.corpus import Limits

    write_corpus(tmp_path, {"notes.txt": "Roots absorb water. " * 100})
    with pytest.raises(CorpusError) as raised:
        load_corpus(tmp_path, limits=Limits(max_file_bytes=1_000))
    assert str(raised.value) == (
        f"corpus {tmp_path} has no documents with text (skipped notes.txt: 2,000 bytes, more than the limit "
        "of 1,000 (RAG_MAX_FILE_BYTES))"
    )


def test_a_jsonl_collection_is_not_held_to_the_file_limit_its_records_are_to_the_document_limit(
    tmp_path: Path,
) -> None:
    """`RAG_MAX_FILE_BYTES` (the setting under test) is for a file that is one document: a `.jsonl` file is a
    collection (a BEIR corpus runs to gigabytes), read a line at a time, and each record is held to
    `RAG_MAX_DOCUMENT_CHARS` instead. Before, a corpus.jsonl over the limit was skipped whole."""
    from rag.corpus import Limits

    records = [{"_id": f"d{i}", "text": "Roots absorb water. " * (5 if i else 200)} for i in range(50)]
    write_corpus(tmp_path, {"corpus.jsonl": "".join(json.dumps(r) + "\n" for r in records)})
    documents, report = load_corpus(tmp_path, max_document_chars=1_000, limits=Limits(max_file_bytes=1_000))
    assert len(documents) == 49 and "d0" not in {d.id for d in documents}
    assert [s["source"] for s in report.skipped] == ["corpus.jsonl (d0)"]
    assert "(RAG_MAX_DOCUMENT_CHARS)" in report.skipped[0]["reason"]


SEPARATORS = "\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e"


def test_jsonl_records_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    """JSON strings may hold U+2028, U+2029, U+0085 and the ASCII separators raw, and `json.dumps(...,
    ensure_ascii=False)` writes them so; JSON Lines ends a line at "\n" only. `str.splitlines()` broke such a
    record in two and the build stopped: "corpus.jsonl:1: not valid JSON". Windows line ends are fine too."""
    texts = [f"Line one.{sep}Line two, same paragraph." for sep in SEPARATORS]
    lines = [json.dumps({"id": f"d{i}", "text": t}, ensure_ascii=False) for i, t in enumerate(texts)]
    write_corpus(tmp_path, {"corpus.jsonl": "\r\n".join(lines) + "\r\n"})
    documents, report = load_corpus(tmp_path)
    assert [d.text for d in documents] == texts and report.warnings == []


def test_jsonl_lines_in_a_legacy_encoding_or_with_bad_bytes_are_read_and_said(tmp_path: Path) -> None:
    """Read a line at a time, a `.jsonl` file is decoded as `decode_text` decodes a text file: UTF-8 (its
    byte-order mark dropped), a line with no UTF-8 in it as windows-1252, invalid bytes replaced."""
    good = json.dumps({"id": "a", "text": "Crème brûlée."}, ensure_ascii=False).encode()
    legacy = json.dumps({"id": "b", "text": LEGACY}, ensure_ascii=False).encode("cp1252")
    broken = json.dumps({"id": "c", "text": "Déjà vu. Caf"}, ensure_ascii=False).encode()[:-2] + b'\xe9"}'
    write_corpus(tmp_path, {"corpus.jsonl": b"\xef\xbb\xbf" + b"\n".join([good, legacy, broken]) + b"\n"})
    documents, report = load_corpus(tmp_path)
    assert [d.text for d in documents] == ["Crème brûlée.", LEGACY, "Déjà vu. Caf\ufffd"]
    assert report.warnings == [
        "corpus.jsonl: 1 line(s) not UTF-8: read as windows-1252",
        "corpus.jsonl: 1 invalid UTF-8 byte(s) replaced",
    ]


def test_a_file_of_many_empty_records_is_summarised_for_reading_and_kept_whole_in_the_report(
    tmp_path: Path,
) -> None:
    records = "".join(f'{{"id": "e{i}", "text": ""}}\n' for i in range(10))
    write_corpus(tmp_path, {"a.txt": "Real text.", "empty.jsonl": records, "blank.txt": ""})
    _, report = load_corpus(tmp_path)
    assert len(report.skipped) == len(report.warnings) == 11
    assert report.summary(shown=3) == [
        "skipped blank.txt: empty file",
        "skipped empty.jsonl (e0): no text",
        "skipped empty.jsonl (e1): no text",
        "skipped empty.jsonl (e2): no text",
        "skipped 7 more records of empty.jsonl: no text",
    ]


def test_empty_file_and_empty_record_are_skipped_with_a_warning(tmp_path: Path) -> None:
    write_corpus(
        tmp_path, {"a.txt": "Real text.", "empty.txt": "", "blank.jsonl": '{"id": "x", "text": "  "}\n'}
    )
    documents, report = load_corpus(tmp_path)
    assert [d.id for d in documents] == ["a.txt"]
    assert {s["reason"] for s in report.skipped} == {"empty file", "no text"}


def test_invalid_utf8_in_a_utf8_file_is_replaced_and_reported(tmp_path: Path) -> None:
    write_corpus(tmp_path, {"bad.txt": "Crème brûlée. ".encode() + b"Caf\xe9 au lait. Fine text."})
    documents, report = load_corpus(tmp_path)
    assert documents[0].text == "Crème brûlée. Caf\ufffd au lait. Fine text."
    assert report.warnings == ["bad.txt: 1 invalid UTF-8 byte(s) replaced"]


LEGACY = "Fix typos (Jan Pokorný). Le café était très “bon” – déjà vu."


def test_a_legacy_single_byte_file_is_read_as_windows_1252_and_said(tmp_path: Path) -> None:
    """Old text and pages are often Latin-1/windows-1252 (Debian's libxslt manual is): every accented letter
    was a U+FFFD in the evidence before."""
    write_corpus(tmp_path, {"old.txt": LEGACY.encode("cp1252")})
    documents, report = load_corpus(tmp_path)
    assert documents[0].text == LEGACY
    assert report.warnings == ["old.txt: not UTF-8 and no encoding declared: read as windows-1252"]


PAGE = "<html><head>{meta}<title>Names</title></head><body><main><p>{text}</p></main></body></html>"
NAMES = "Zażółć gęślą jaźń: Łódź jest dużym miastem, a Kraków jest starym miastem w Polsce."


@pytest.mark.parametrize(
    ("meta", "encoding"),
    [
        ('<meta charset="windows-1250">', "cp1250"),
        ('<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-2">', "iso8859-2"),
        ('<meta charset="iso-8859-1">', "cp1252"),  # browsers read a Latin-1 label as windows-1252
    ],
)
def test_a_page_is_read_in_the_encoding_it_declares(tmp_path: Path, meta: str, encoding: str) -> None:
    text = LEGACY if encoding == "cp1252" else NAMES
    write_corpus(tmp_path, {"page.html": PAGE.format(meta=meta, text=text).encode(encoding)})
    documents, report = load_corpus(tmp_path)
    assert documents[0].text == text and report.warnings == []


def test_a_file_with_a_utf16_byte_order_mark_is_text_not_binary(tmp_path: Path) -> None:
    write_corpus(tmp_path, {"notepad.txt": "Łódź in UTF-16, as Windows Notepad saved it.".encode("utf-16")})
    documents, report = load_corpus(tmp_path)
    assert documents[0].text == "Łódź in UTF-16, as Windows Notepad saved it." and report.skipped == []


def test_a_50_mb_document_is_skipped_with_a_clear_reason(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("w") as handle:
        line = "This sentence repeats to make a very large document. " * 20 + "\n"
        while handle.tell() < 50_000_000:
            handle.write(line)
    write_corpus(tmp_path, {"small.txt": "A small document."})
    documents, report = load_corpus(tmp_path, max_document_chars=10_000_000)
    assert [d.id for d in documents] == ["small.txt"]
    assert "more than the limit of 10,000,000 (RAG_MAX_DOCUMENT_CHARS)" in report.skipped[0]["reason"]


def test_duplicate_ids(tmp_path: Path) -> None:
    write_corpus(
        tmp_path, {"a.jsonl": '{"id": "1", "text": "Same."}\n', "b.jsonl": '{"id": "1", "text": "Same."}\n'}
    )
    documents, report = load_corpus(tmp_path)
    assert len(documents) == 1 and "duplicate id '1'" in report.warnings[0]
    write_corpus(tmp_path, {"b.jsonl": '{"id": "1", "text": "Different."}\n'})
    with pytest.raises(CorpusError, match="duplicate document id '1' with different content"):
        load_corpus(tmp_path)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "has no documents"),
        ({"x.jsonl": "not json\n"}, "x.jsonl:1: not valid JSON"),
        ({"x.jsonl": '{"text": "no id"}\n'}, "no 'id'"),
        (
            {"notes.csv": "a,b"},
            "has no documents with text (passed over 1 file(s) of types not read: .csv ×1",
        ),
    ],
)
def test_unusable_corpora_raise_one_clear_error(tmp_path: Path, files: dict[str, str], message: str) -> None:
    write_corpus(tmp_path / "c", files)
    with pytest.raises(CorpusError, match=re.escape(message)):
        load_corpus(tmp_path / "c")


def test_missing_corpus(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="corpus not found"):
        load_corpus(tmp_path / "nope")


def test_corpus_id_depends_on_content_not_order(corpus_dir: Path) -> None:
    documents, _ = load_corpus(corpus_dir)
    assert corpus_id(documents) == corpus_id(list(reversed(documents)))
    changed = [*documents[:-1], type(documents[-1])(documents[-1].id, "x", documents[-1].text + "!")]
    assert corpus_id(changed) != corpus_id(documents)
