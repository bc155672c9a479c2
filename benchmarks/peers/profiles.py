"""Summaries of the two profiles behind bench_peers.py's "where the time goes" (stdlib only).

- py-spy's raw output (`--format raw`: one collapsed stack and its sample count per line) → the hot path
  below a root function and the lines with the most self time.
- ONNX Runtime's operator trace (chrome://tracing JSON, RAG_ONNX_PROFILE_DIR) → time per operator type, and
  the arithmetic rate of the matrix multiplies, from the shapes the trace records.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

Stack = tuple[list[str], int]  # frames root first, "function (file:line)"; samples


def read_collapsed(text: str) -> list[Stack]:
    stacks = []
    for line in text.splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def function(frame: str) -> str:
    """ "Pipeline.answer (rag/pipeline/pipeline.py:120)" → "Pipeline.answer"."""
    return frame.split(" (", 1)[0]


def _below(stacks: Iterable[Stack], root: str) -> list[Stack]:
    """The part of each sample under its outermost `root` frame (samples without one are dropped)."""
    out = []
    for frames, count in stacks:
        names = [function(f) for f in frames]
        if root in names:
            out.append((frames[names.index(root) + 1 :], count))
    return out


def hot_path(stacks: list[Stack], root: str, depth: int = 8) -> list[tuple[str, float]]:
    """From `root` down, the heaviest callee at each level (by function) and its share of root's samples."""
    below = _below(stacks, root)
    total = sum(count for _, count in below)
    path: list[tuple[str, float]] = [(root, 1.0)] if total else []
    for level in range(depth):
        callees: Counter[str] = Counter()
        for frames, count in below:
            if len(frames) > level:
                callees[function(frames[level])] += count
        if not callees:
            break
        name, count = callees.most_common(1)[0]
        path.append((name, count / total))
        below = [(f, c) for f, c in below if len(f) > level and function(f[level]) == name]
    return path


def self_time(stacks: list[Stack], root: str, top: int = 5) -> list[tuple[str, float]]:
    """The innermost Python lines under `root` with the most samples (a native call shows as its caller's
    line), as shares of root's samples."""
    below = _below(stacks, root)
    total = sum(count for _, count in below)
    leaves: Counter[str] = Counter()
    for frames, count in below:
        leaves[frames[-1] if frames else root] += count
    return [(leaf, count / total) for leaf, count in leaves.most_common(top)]


def _dims(shape: dict[str, list[int]]) -> list[int]:
    return next(iter(shape.values()))


def operator_times(events: list[dict[str, Any]], answers: int) -> dict[str, Any]:
    """Kernel time per operator type (ms per answer, share) and the matrix multiplies' rate. A multiply's
    work is out_elements × K multiply-adds, K the first input's last dimension (int8 weights are initialisers
    the trace does not list, so the output's shape is what is known for every kind)."""
    kernels = [
        e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")
    ]
    by_op: Counter[str] = Counter()
    flops: Counter[str] = Counter()
    for e in kernels:
        op = e["args"]["op_name"]
        by_op[op] += e["dur"]
        if "MatMul" in op:
            out = _dims(e["args"]["output_type_shape"][0])
            k = _dims(e["args"]["input_type_shape"][0])[-1]
            flops[op] += 2 * math.prod(out) * k
    total = sum(by_op.values())
    runs = sum(1 for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    return {
        "answers": answers,
        "runs": runs,
        "ms_per_answer": total / 1000 / answers,
        "operators": [
            {
                "op": op,
                "ms_per_answer": dur / 1000 / answers,
                "share": dur / total,
                **({"gflops": flops[op] / dur / 1000} if op in flops else {}),
            }
            for op, dur in by_op.most_common()
        ],
    }
