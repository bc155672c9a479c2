"""The store's documents, read on demand: the same documents as written, from any thread, in a worker forked
after the master read them (preload), without holding every text in memory."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rag.config import BuildConfig
from rag.corpus import Document, segment_corpus
from rag.corpus.documents import Block
from rag.index.store import StoredDocuments, read_store, write_store


def documents(count: int = 30, size: int = 200, words: int = 1) -> list[Document]:
    out = []
    for i in range(count):
        filler = " ".join(["word"] * words)
        text = f"Heading {i}\n\n" + " ".join(
            f"Sentence {j} of document {i} says {filler}." for j in range(size)
        )
        blocks = (
            Block(0, 10 + len(str(i)) - 1, "heading", ""),
            Block(12, len(text), "paragraph", f"Heading {i}"),
        )
        out.append(
            Document(f"doc-{i}", f"Title {i}", text, {"n": i, "tags": ["a", str(i % 3)]}, blocks, (0, 40))
        )
    return out


def written(tmp_path: Path, docs: list[Document]) -> Path:
    path = tmp_path / "store.sqlite"
    write_store(path, docs, segment_corpus(docs, BuildConfig()))
    return path


def test_documents_read_back_as_written(tmp_path: Path) -> None:
    docs = documents()
    stored, _ = read_store(written(tmp_path, docs))
    assert isinstance(stored, StoredDocuments) and len(stored) == len(docs)
    assert list(stored) == docs
    assert stored[-1] == docs[-1] and stored[2:5] == docs[2:5]
    assert stored.ids == [d.id for d in docs] and stored.metadata[4] == {"n": 4, "tags": ["a", "1"]}
    assert np.array_equal(stored.text_lengths, [len(d.text) for d in docs])
    with pytest.raises(IndexError):
        stored[len(docs)]


def test_threads_read_side_by_side(tmp_path: Path) -> None:
    docs = documents()
    stored, _ = read_store(written(tmp_path, docs))
    rows = list(range(len(docs))) * 20
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda row: stored[row].text, rows))
    assert texts == [docs[row].text for row in rows]


def _read_in_child(stored: StoredDocuments, row: int, queue: multiprocessing.Queue) -> None:
    stored._cached.cache_clear()  # read through the connection, not the copy of the parent's cache
    queue.put(stored[row].text)


def test_a_worker_forked_after_the_master_read_reads_on_its_own(tmp_path: Path) -> None:
    docs = documents()
    stored, _ = read_store(written(tmp_path, docs))
    assert stored[0] == docs[0]  # the master has opened its connection
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(stored, 7, queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0 and queue.get(timeout=5) == docs[7].text
    assert stored[8] == docs[8]  # and the master still reads


MEMORY = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from rag.index.store import read_store

    def anon_kb():
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon"))

    before = anon_kb()
    stored, seg = read_store(Path(sys.argv[1]))
    print(json.dumps({"anon_kb": anon_kb() - before, "first": stored[0].text[:9]}))
    """
)


def test_loading_holds_no_texts(tmp_path: Path) -> None:
    docs = documents(count=200, size=100, words=150)  # 16 MB of text in 20,000 sentences
    path = written(tmp_path, docs)
    child = subprocess.run(
        [sys.executable, "-c", MEMORY, str(path)], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr[-2000:]
    seen = json.loads(child.stdout)
    assert seen["first"] == "Heading 0"
    assert seen["anon_kb"] < 8 * 1024, seen  # ids, titles, metadata and sentence offsets, but no text
