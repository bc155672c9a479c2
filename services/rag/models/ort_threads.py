"""How an ONNX Runtime session uses its threads when it has more than one.

An answer runs two sessions one after the other: the embedder, then the cross-encoder. ONNX Runtime's pool
threads spin after a run, waiting for more work; the embedder's kept spinning while the cross-encoder ran
and, on 2 cores, took a core from it: in-process answers on 2 threads were no faster than on one. So each
session stops its pool's spinning when its last concurrent run returns (`session.force_spinning_stop`),
and keeps it within a run, between one operator and the next, where it saves a wake-up per operator.
Measured in docs/BENCHMARKS.md against spinning off altogether and against one pool shared by the process
(ONNX Runtime's global pool: a process-wide size that every later session must use, whatever it asked for).

One-thread sessions have no pool: the calling thread does the work, as in a gunicorn worker with the
default RAG_THREADS=1.
"""

from __future__ import annotations

from typing import Any

__all__ = ["configure_threads"]


def configure_threads(options: Any, threads: int) -> None:
    """Set `options` (an onnxruntime.SessionOptions) to run on `threads` intra-op threads."""
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    if threads > 1:
        options.add_session_config_entry("session.force_spinning_stop", "1")
