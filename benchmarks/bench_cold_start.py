"""`make bench-image`: the image's size and its cold start (container start → first 200 from `/ready`).

Built the way `make image` builds it (MODEL_SOURCE=local, the local base image), with random-weight models
of exactly the production architectures, exported int8 by `rag models export`:
  embedder  e5-base-v2's (BERT 12×768, vocabulary 30,522, mean pooling)
  reranker  bge-reranker-base's (XLM-R 12×768, vocabulary 250,002)
and the SciFact sentence bundle built with that embedder, mounted read-only at /artifacts as the init
container leaves it. Each run is `podman run -d --read-only --tmpfs /tmp` (2 workers, preload, warm-up on),
`/ready` polled every 50 ms. In the same run, `podman run … python -c pass` is timed: what starting any
container costs here, so the rest is the service's own start.

    python benchmarks/bench_cold_start.py            # production-size models (first run: ~40 min, mostly
                                                     # embedding SciFact; the embedding cache keeps it)
    python benchmarks/bench_cold_start.py --quick    # tiny models and the sample corpus: a dry run

Needs podman (installed through apt when missing), the export extras, and an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
from bench_http import WORK, bundle_and_questions  # noqa: E402
from bench_models import export_folder, prepare  # noqa: E402
from rag_testkit.containers import (  # noqa: E402  (tests/ is on the path)
    build_image,
    ensure_base_image,
    images_removed_afterwards,
    podman,
    serving_container,
)

IMAGE = "localhost/rag:bench"
TARGET_SECONDS = 5.0
SIZE_BUDGET = 1_000_000_000


def echo(message: str) -> None:
    print(message, flush=True)


def models(quick: bool) -> tuple[Path, Path]:
    if quick:
        from rag_testkit.tiny_models import make_tiny_bge_reranker, make_tiny_e5

        from rag.models.export import export_model

        folders = []
        for name, make, kind in (
            ("e5", make_tiny_e5, "embedder"),
            ("reranker", make_tiny_bge_reranker, None),
        ):
            out = WORK / f"tiny-{name}.onnx-int8"
            if not (out / "rag_model.json").is_file():
                source = make(WORK / f"tiny-{name}")
                export_model(str(source), out, kind=kind, quantize="int8", overwrite=True)  # type: ignore[arg-type]
            folders.append(out)
        return folders[0], folders[1]
    prepare(WORK, ["e5-base", "bge-base-ce"], ["onnx-int8"], echo)
    return export_folder(WORK, "e5-base", "onnx-int8"), export_folder(WORK, "bge-base-ce", "onnx-int8")


def seconds_to_ready(bundle: Path) -> tuple[float, dict[str, Any]]:
    """The image run as the README shows it (the bundle mounted where the init container would put it)."""
    started = time.perf_counter()
    try:
        with serving_container(IMAGE, f"{bundle}:/artifacts/bundle:ro", interval=0.05) as (_, url):
            elapsed = time.perf_counter() - started
            info = httpx.get(f"{url}/info", timeout=5).json()
            answer = httpx.post(f"{url}/answer", json={"question": "vitamin D and bone density"}, timeout=60)
            answer.raise_for_status()
    except AssertionError as exc:
        raise SystemExit(str(exc)) from None
    return elapsed, {
        "load_seconds": info["models"]["load_seconds"],
        "first_answer": answer.json()["timings_ms"],
    }


def container_start_seconds() -> float:
    started = time.perf_counter()
    podman("run", "--rm", "--read-only", "--tmpfs", "/tmp", "--entrypoint", "python", IMAGE, "-c", "pass")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny models and the sample corpus (dry run)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", default=str(WORK / "cold_start.json"))
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)

    embedder, reranker = models(args.quick)
    bundle, _ = bundle_and_questions(args.quick, embedder, "hnsw", label=f"-{embedder.name.split('.')[0]}")
    # The image and its build stages would stay behind, ~1.4 GB a run, dangling after the next build.
    with images_removed_afterwards():
        ensure_base_image()
        return measure(args, embedder, reranker, bundle)


def measure(args: argparse.Namespace, embedder: Path, reranker: Path, bundle: Path) -> int:
    """Build the image, then time container starts: bare, and to /ready serving `bundle`."""
    echo(f"building {IMAGE} with {embedder.name} + {reranker.name} …")
    with tempfile.TemporaryDirectory(prefix="rag-image-") as context:
        size = build_image(IMAGE, Path(context), embedder=embedder, reranker=reranker)
    model_mb = {p.name: sum(f.stat().st_size for f in p.iterdir()) / 1e6 for p in (embedder, reranker)}
    echo(f"image: {size / 1e6:.1f} MB ({', '.join(f'{k} {v:.1f} MB' for k, v in model_mb.items())})")

    baseline = [container_start_seconds() for _ in range(args.runs)]
    runs = [seconds_to_ready(bundle) for _ in range(args.runs)]
    ready = [seconds for seconds, _ in runs]
    base = statistics.median(baseline)
    echo(f"container start alone (python -c pass): {' / '.join(f'{s:.2f}' for s in baseline)} s")
    for i, (seconds, detail) in enumerate(runs, 1):
        loads = " / ".join(f"{k} {v:.2f}" for k, v in detail["load_seconds"].items())
        echo(
            f"run {i}: start → ready {seconds:.2f} s ({seconds / base:.1f}× the bare container); load {loads}"
        )
    report = {
        "quick": args.quick,
        "image_bytes": size,
        "model_mb": model_mb,
        "bundle": str(bundle),
        "container_start_seconds": baseline,
        "ready_seconds": ready,
        "runs": [detail for _, detail in runs],
    }
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    worst = max(ready)
    echo(
        f"worst start → ready {worst:.2f} s (target ≤ {TARGET_SECONDS:.0f} s), image {size / 1e6:.1f} MB "
        f"(budget ≤ {SIZE_BUDGET / 1e6:.0f} MB); written to {args.json}"
    )
    return 0 if args.quick or (worst <= TARGET_SECONDS and size <= SIZE_BUDGET) else 1


if __name__ == "__main__":
    sys.exit(main())
