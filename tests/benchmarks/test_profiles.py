"""benchmarks/peers/profiles.py: the summaries behind bench_peers.py's "where the time goes"."""

import json
from pathlib import Path

import pytest
from peers import profiles

from rag.models.export import export_model
from rag.models.onnx_backend import OnnxCrossEncoder

RAW = "\n".join(
    [
        "<module> (x.py:1);Pipeline.answer (p.py:10);Pipeline._rerank (p.py:20);Session.run (ort.py:395) 80",
        "<module> (x.py:1);Pipeline.answer (p.py:10);Pipeline._rerank (p.py:21) 5",
        "<module> (x.py:1);Pipeline.answer (p.py:10);Pipeline._embed (p.py:30);Session.run (ort.py:395) 15",
        "<module> (x.py:1);Pipeline.load (p.py:5) 400",  # outside the root: not counted
        "malformed line",
    ]
)


def test_hot_path_follows_the_heaviest_callee_as_shares_of_the_roots_samples() -> None:
    stacks = profiles.read_collapsed(RAW)
    assert len(stacks) == 4
    assert profiles.hot_path(stacks, "Pipeline.answer") == [
        ("Pipeline.answer", 1.0),
        ("Pipeline._rerank", 0.85),
        ("Session.run", 0.80),
    ]
    assert profiles.hot_path(stacks, "absent") == []


def test_self_time_keeps_the_line_so_a_native_call_shows_at_its_caller() -> None:
    top = profiles.self_time(profiles.read_collapsed(RAW), "Pipeline.answer", top=2)
    assert top == [("Session.run (ort.py:395)", 0.95), ("Pipeline._rerank (p.py:21)", 0.05)]


def node(op: str, dur: int, inputs: list[list[int]], output: list[int]) -> dict:
    shapes = [{"float": s} for s in inputs]
    args = {"op_name": op, "input_type_shape": shapes, "output_type_shape": [{"float": output}]}
    return {"cat": "Node", "name": f"n_{op}_kernel_time", "dur": dur, "args": args}


def test_operator_times_per_answer_and_the_multiplies_rate() -> None:
    events = [
        node("MatMul", 3000, [[2, 4, 8, 16], [2, 4, 16, 8]], [2, 4, 8, 8]),  # 512 outputs × K=16
        node("Add", 1000, [[2, 8]], [2, 8]),
        {"cat": "Node", "name": "n_fence_before", "dur": 99, "args": {"op_name": "Add"}},  # not a kernel
        {"cat": "Session", "name": "model_run", "dur": 4000},
        {"cat": "Session", "name": "model_run", "dur": 4000},
    ]
    out = profiles.operator_times(events, answers=2)
    assert out["runs"] == 2 and out["ms_per_answer"] == pytest.approx(2.0)
    matmul, add = out["operators"]
    assert (matmul["op"], matmul["ms_per_answer"], matmul["share"]) == ("MatMul", 1.5, 0.75)
    assert matmul["gflops"] == pytest.approx(2 * 512 * 16 / 3000 / 1000)
    assert add == {"op": "Add", "ms_per_answer": 0.5, "share": 0.25}


def test_a_real_cross_encoder_trace_is_read(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    export_model(str(tiny_models["reranker"]), tmp_path / "ce", kind="cross-encoder")
    scorer = OnnxCrossEncoder(tmp_path / "ce", threads=1, profile_dir=tmp_path / "trace")
    for _ in range(3):
        scorer.score("what boils", ["Water boils at 100 degrees.", "Cats sleep."])
    trace = scorer._session.end_profiling()
    assert trace is not None and trace.parent == tmp_path / "trace"
    assert scorer._session.end_profiling() is None  # once: the exit hook then does nothing
    out = profiles.operator_times(json.loads(trace.read_text()), answers=3)
    assert out["runs"] == 6  # the two pairs differ in length by more than a batch may pad: 2 batches a call
    assert sum(o["share"] for o in out["operators"]) == pytest.approx(1.0)
    assert any(o.get("gflops", 0) > 0 for o in out["operators"] if "MatMul" in o["op"])
