"""`rag`: build a bundle, ask it questions, evaluate. Thin over the pipeline; errors exit 2 with one line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .cli_cache import add_cache_parser
from .cli_ingest import add_ingest_parser
from .config import Settings, load_settings
from .errors import RagError

__all__ = ["main"]


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("embedding_model", "reranker_model", "unit", "dense_index"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "no_rerank", False):
        overrides["reranker_model"] = None
    return Settings(**overrides)


def cmd_build(args: argparse.Namespace) -> int:
    from .index import Builder

    builder = Builder.from_settings(_settings(args), cache_path=args.cache)
    documents, report = builder.load(args.corpus)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    result = builder.build(documents, args.out, report=report, overwrite=args.force, progress=not args.quiet)
    config = builder.config
    counts = result.manifest.counts
    size = sum(f.bytes for f in result.manifest.files.values())
    print(
        f"built {result.path}: {counts['documents']} documents, {counts['sentences']} sentences, "
        f"{counts['units']} {config.unit} units in {result.seconds:.1f}s "
        f"({counts['units'] / max(result.embed_seconds, 1e-9):.0f} units/s embedded, {result.cache_hits} from cache), "
        f"{size / 1e6:.1f} MB, corpus_id {result.manifest.corpus_id}"
    )
    return 0


def _print_answer(answer: Any) -> None:
    if answer.abstained:
        print(f"(no answer) {answer.reason}")
    else:
        print(answer.answer)
    for i, e in enumerate(answer.evidence, start=1):
        print(f"  [{i}] {e.doc_id} {e.char_start}:{e.char_end} score={e.score:.3f}  {e.title}")
    total = answer.timings_ms.get("total", 0.0)
    print(f"  confidence {answer.confidence:.3f} · {total:.1f} ms")


def _batch_questions(path: Path) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RagError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if "question" not in record:
                raise RagError(f"{path}:{number}: no 'question'")
            yield str(record.get("id", number)), record["question"], record.get("filters")
        else:
            yield str(number), line.strip(), None


def _answered_ids(out: Path) -> set[str]:
    """Ids already answered; a torn last line (crash mid-write) is cut off so appending stays valid JSONL."""
    if not out.exists():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with out.open("r+b") as handle:
            handle.truncate(keep)
        data = data[:keep]
    return {json.loads(line)["id"] for line in data.decode("utf-8").splitlines() if line.strip()}


def cmd_ask(args: argparse.Namespace) -> int:
    from .pipeline import Pipeline

    settings = _settings(args)
    pipeline = Pipeline.from_settings(settings, args.bundle)
    if args.batch:
        out = Path(args.out or "answers.jsonl")
        done = _answered_ids(out)
        answered = skipped = 0
        with out.open("a", encoding="utf-8") as handle:
            for qid, question, filters in _batch_questions(Path(args.batch)):
                if qid in done:
                    skipped += 1
                    continue
                try:
                    record = {"id": qid, **pipeline.answer(question, filters=filters).model_dump()}
                except RagError as exc:
                    record = {
                        "id": qid,
                        "question": question,
                        "error": str(exc),
                        "error_type": exc.error_type,
                    }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                done.add(qid)
                answered += 1
        print(f"answered {answered}, already done {skipped} → {out}", file=sys.stderr)
        return 0
    if not args.question:
        raise RagError("give a question, or --batch FILE")
    filters = json.loads(args.filters) if args.filters else None
    answer = pipeline.answer(args.question, filters=filters)
    if args.json:
        print(answer.model_dump_json(indent=2))
    else:
        _print_answer(answer)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.bundle:
        return _eval_bundle(args)
    from .eval.runner import run_eval

    if not args.work_dir:
        raise RagError("give WORK_DIR (SciFact/SQuAD suites) or --bundle BUNDLE --eval-set DIR")
    settings = _settings(args)
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = set(suites) - {"scifact", "squad"}
    if unknown:
        raise RagError(f"unknown suite(s): {', '.join(sorted(unknown))} (known: scifact, squad)")
    data = Path(args.data)
    if not data.is_dir():
        raise RagError(f"evaluation data not found: {data}")
    run_eval(
        settings,
        data,
        Path(args.work_dir),
        suites,
        Path(args.json_out or Path(args.work_dir) / "eval.json"),
        echo=print,
    )
    return 0


def _eval_bundle(args: argparse.Namespace) -> int:
    """One built bundle on an evaluation set, through the Pipeline the API serves (settings from RAG_*)."""
    from .eval import load_eval_set
    from .eval.retrieval import evaluate_bundle
    from .index import record_evaluation
    from .pipeline import Pipeline

    if args.work_dir:
        raise RagError("--bundle evaluates a built bundle: give no WORK_DIR")
    if not args.eval_set:
        raise RagError("--bundle needs --eval-set DIR (queries.jsonl and qrels/<split>.tsv)")
    eval_set = load_eval_set(args.eval_set, args.split)
    pipeline = Pipeline.from_settings(_settings(args), args.bundle)
    known = {d.id for d in pipeline.bundle.documents}
    absent = sorted({d for judged in eval_set.qrels.values() for d in judged} - known)
    if absent:  # a degraded corpus shows up here first; the score says how much it matters
        print(
            f"warning: {len(absent)} judged document(s) not in the bundle: {', '.join(absent[:5])}",
            file=sys.stderr,
        )
    evaluation = evaluate_bundle(pipeline, eval_set)
    if args.record:
        record_evaluation(args.bundle, evaluation)
    report = {"bundle": str(args.bundle), "recorded": args.record, **evaluation.model_dump()}
    text = json.dumps(report, indent=2)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def cmd_models_export(args: argparse.Namespace) -> int:
    from .models.export import export_model

    result = export_model(
        args.source,
        args.out,
        kind=args.kind,
        quantize=args.quantize,
        optimize=args.optimize,
        overwrite=args.force,
        settings=load_settings(),
    )
    spec = result.spec
    check = spec.export.get("check", {})
    variant = "int8 per-channel" if spec.export.get("quantization") else "fp32"
    cosine = f", min cosine {check['min_cosine']:.4f}" if "min_cosine" in check else ""
    print(
        f"exported {spec.kind} {spec.source_model} (fingerprint {spec.fingerprint}) → {result.path}: {variant}"
        f"{', optimised ' + str(spec.export['optimization']) if spec.export.get('optimization') else ''}, "
        f"opset {spec.export.get('opset')}, {result.bytes / 1e6:.1f} MB in {result.seconds:.1f}s; "
        f"vs torch: max |diff| {check.get('max_abs_diff', float('nan')):.2e}{cosine}"
    )
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    from .models.importer import ImportOptions, import_model_folder

    options = ImportOptions(
        kind=args.kind,
        name=args.name,
        pooling=args.pooling,
        query_prefix=args.query_prefix,
        passage_prefix=args.passage_prefix,
        max_seq_length=args.max_length,
        graph=args.graph,
        abstain_threshold=args.abstain_threshold,
        calibrated_with=args.calibrated_with or "",
    )
    spec = import_model_folder(args.source, args.out, options)
    detail = f", {spec.pooling} pooling, dim {spec.dim}" if spec.kind == "embedder" else ""
    prefix = f", query prefix {spec.query_prefix!r}" if spec.query_prefix else ""
    print(
        f"imported {spec.kind} {spec.source_model} (fingerprint {spec.fingerprint}) → {args.out or args.source}: "
        f"{spec.export.get('quantization') or 'fp32'}, max length {spec.max_seq_length}{detail}{prefix}"
    )
    return 0


def cmd_models_preload(args: argparse.Namespace) -> int:
    from .models.preload import preload_models

    result = preload_models(
        args.dest,
        settings=_settings(args),
        backend=args.backend,
        quantize=args.quantize,
        optimize=args.optimize,
        overwrite=args.force,
        check=not args.no_check,
        echo=lambda line: print(line, file=sys.stderr),
    )
    for model in result.models:
        print(
            f"preloaded {model.role} {model.name} (fingerprint {model.fingerprint}) → "
            f"{result.dest / model.path}: {model.format}, {model.bytes / 1e6:.1f} MB"
        )
    print(f"serve with: {' '.join(f'{k}={v}' for k, v in result.env.items())}")
    return 0


def _store(args: argparse.Namespace, settings: Settings | None = None, uri: str | None = None) -> Any:
    from .artifacts import S3Location, S3Store
    from .errors import ConfigError

    settings = settings or load_settings()
    uri = uri or args.uri or settings.artifacts_uri
    if not uri:
        raise ConfigError("no artifacts location: pass --uri s3://bucket/prefix or set RAG_ARTIFACTS_URI")
    return S3Store(
        S3Location.parse(uri),
        endpoint_url=args.endpoint_url or settings.s3_endpoint_url,
        deadline_seconds=args.timeout or settings.artifacts_timeout_seconds,
    )


def _gate(args: argparse.Namespace, store: Any) -> int:
    """0: the new bundle may go on the channel; 1: refused (quality fell); errors exit 2 as everywhere."""
    from . import artifacts
    from .errors import ArtifactNotFound
    from .eval.gate import quality_gate
    from .index import read_manifest

    if (args.bundle is None) == (args.version is None):
        raise RagError("give a local BUNDLE or --version of one in S3 (exactly one)")
    new = (
        read_manifest(args.bundle) if args.bundle else artifacts.read_version_manifest(store, args.version)[1]
    )
    try:
        channel = artifacts.read_channel(store, args.channel)
    except ArtifactNotFound:
        channel = None
    current = artifacts.read_version_manifest(store, channel.version)[1] if channel else None
    against = f"channel {args.channel}" + (f" at {channel.version}" if channel else "")
    verdict = quality_gate(new, current, metric=args.metric, margin=args.margin, against=against)
    print(f"quality gate: {verdict.message}", file=sys.stdout if verdict.passed else sys.stderr)
    return 0 if verdict.passed else 1


def cmd_artifacts(args: argparse.Namespace) -> int:
    from . import artifacts

    action = args.artifacts_command
    if action == "download":
        names = artifacts.download_prefix(_store(args, uri=args.source), Path(args.dest))
        print(f"downloaded {len(names)} object(s) from {args.source} → {args.dest}")
        return 0
    store = _store(args)
    if action == "gate":
        return _gate(args, store)
    if action == "push":
        version, uploaded = artifacts.push_bundle(store, Path(args.bundle), args.version)
        if args.json:
            print(json.dumps({"version": version, "uploaded": uploaded, "location": str(store.location)}))
        else:
            state = "pushed" if uploaded else "already there (byte-identical)"
            print(f"{state}: {version} → {store.location}/bundles/{version}/")
    elif action == "promote":
        channel = artifacts.promote(store, args.version, args.channel)
        print(f"channel {channel.name}: {channel.previous} → {channel.version}")
    elif action == "rollback":
        channel = artifacts.rollback(store, args.channel)
        print(f"channel {channel.name}: {channel.previous} → {channel.version} (rolled back)")
    elif action == "list":
        listing = artifacts.list_artifacts(store)
        if args.json:
            print(json.dumps(listing, indent=2))
        else:
            for version in listing["versions"]:
                on = [name for name, c in listing["channels"].items() if c["version"] == version]
                print(f"{version}{'  ← ' + ', '.join(sorted(on)) if on else ''}")
    elif action == "pull":
        result = artifacts.pull_bundle(store, Path(args.dest), version=args.version, channel=args.channel)
        state = "pulled and verified" if result.downloaded else "already present, verified"
        print(f"{state}: {result.version} → {result.path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--embedding-model", help="hub id, local folder, or pkg:<module> (env RAG_EMBEDDING_MODEL)"
        )
        p.add_argument(
            "--reranker-model", help="hub id or local folder (env RAG_RERANKER_MODEL; empty = off)"
        )
        p.add_argument("--no-rerank", action="store_true", help="do not load or use a reranker")

    build = sub.add_parser("build", help="build an index bundle from a corpus folder or file")
    build.add_argument("corpus")
    build.add_argument("--out", required=True)
    build.add_argument("--unit", choices=["sentence", "passage", "document"])
    build.add_argument("--dense-index", choices=["flat", "hnsw"])
    build.add_argument(
        "--cache",
        help="embedding cache file (SQLite; env RAG_EMBEDDING_CACHE); rebuilds embed only what changed",
    )
    build.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    build.add_argument("--quiet", action="store_true")
    model_flags(build)
    build.set_defaults(func=cmd_build)
    add_cache_parser(sub)  # `rag cache stats|purge` (cli_cache.py)
    add_ingest_parser(sub)  # `rag ingest --server URL CORPUS` (cli_ingest.py)

    ask = sub.add_parser("ask", help="answer a question (or a batch) from a bundle")
    ask.add_argument("bundle")
    ask.add_argument("question", nargs="?")
    ask.add_argument("--json", action="store_true")
    ask.add_argument("--filters", help='JSON, e.g. {"source": "a.md"} or {"tags": {"not": "draft"}}')
    ask.add_argument("--batch", help="JSONL of {id, question, filters?} or one question per line")
    ask.add_argument("--out", help="answers JSONL for --batch (resumable: answered ids are skipped)")
    model_flags(ask)
    ask.set_defaults(func=cmd_ask)

    ev = sub.add_parser(
        "eval",
        help="SciFact and SQuAD evaluation (WORK_DIR holds bundles and the report), "
        "or one built bundle on an evaluation set (--bundle, --eval-set)",
    )
    ev.add_argument("work_dir", nargs="?")
    ev.add_argument("--data", default="../shared/data", help="folder with scifact/ and squad-v1.1/")
    ev.add_argument("--suites", default="scifact,squad")
    ev.add_argument("--json-out")
    ev.add_argument("--bundle", help="evaluate this built bundle instead of running the suites")
    ev.add_argument("--eval-set", help="with --bundle: folder with queries.jsonl and qrels/<split>.tsv")
    ev.add_argument("--split", default="test", help="with --bundle: the qrels file to read (default test)")
    ev.add_argument(
        "--record", action="store_true", help="with --bundle: write the metrics into its manifest.json"
    )
    model_flags(ev)
    ev.set_defaults(func=cmd_eval)

    models = sub.add_parser("models", help="model tooling")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    export = models_sub.add_parser(
        "export", help="export an embedder or cross-encoder to an ONNX folder for the onnx backend"
    )
    export.add_argument("source", metavar="SRC", help="hub id, local folder, or pkg:<module>")
    export.add_argument("--out", required=True, help="the ONNX folder to write (replaced whole)")
    export.add_argument("--kind", choices=["embedder", "cross-encoder"], help="default: from the folder")
    export.add_argument("--quantize", choices=["int8"], help="dynamic int8, per-channel weights")
    export.add_argument("--optimize", action="store_true", help="ONNX Runtime O2 graph fusions at export")
    export.add_argument("--force", action="store_true", help="replace an existing folder at --out")
    export.set_defaults(func=cmd_models_export)

    imp = models_sub.add_parser(
        "import",
        help="describe a published ONNX model folder (model.onnx + tokenizer.json) for the onnx backend",
    )
    imp.add_argument(
        "source", metavar="FOLDER", help="the folder as published (Optimum, fastembed, Xenova, …)"
    )
    imp.add_argument("--out", help="write a new folder here instead of recording the import in FOLDER")
    imp.add_argument(
        "--kind", choices=["embedder", "cross-encoder"], help="default: from the graph's outputs"
    )
    imp.add_argument("--name", help="the model's name to record (default: from config.json or the folder)")
    imp.add_argument("--pooling", choices=["mean", "cls"], help="embedders; default: detected")
    imp.add_argument("--query-prefix", help="embedders; default: the model family's instruction, if known")
    imp.add_argument("--passage-prefix", help="embedders; default: the model family's, if known")
    imp.add_argument(
        "--max-length", type=int, help="tokens per input; default: from the tokenizer and config"
    )
    imp.add_argument("--graph", help="the graph file inside FOLDER when it holds several")
    imp.add_argument(
        "--abstain-threshold",
        type=float,
        help="the calibrated confidence below which answers abstain, recorded in the folder and served unless "
        "set in the environment: a cross-encoder's probability (RAG_ABSTAIN_RERANK_THRESHOLD), an embedder's "
        "cosine for answers without a reranker (RAG_ABSTAIN_THRESHOLD)",
    )
    imp.add_argument("--calibrated-with", help="how that threshold was found: models, data, rule")
    imp.set_defaults(func=cmd_models_import)

    preload = models_sub.add_parser(
        "preload",
        help="fetch the configured models into one folder (DEST/embedder, DEST/reranker) to serve offline",
    )
    preload.add_argument("--dest", required=True, help="the models folder, e.g. /models")
    preload.add_argument(
        "--backend",
        choices=["torch", "onnx"],
        help="onnx: export (default with --quantize/--optimize, else RAG_BACKEND); torch: copy the folders",
    )
    preload.add_argument("--quantize", choices=["int8"], help="export with dynamic int8 (implies onnx)")
    preload.add_argument("--optimize", action="store_true", help="ONNX Runtime O2 graph fusions at export")
    preload.add_argument("--force", action="store_true", help="replace existing model folders in DEST")
    preload.add_argument("--no-check", action="store_true", help="do not load the models once afterwards")
    model_flags(preload)
    preload.set_defaults(func=cmd_models_preload)

    arts = sub.add_parser("artifacts", help="bundle versions and channels in S3 (push, promote, pull, …)")
    arts_sub = arts.add_subparsers(dest="artifacts_command", required=True)

    def s3_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--uri", help="s3://bucket/prefix (env RAG_ARTIFACTS_URI)")
        p.add_argument("--endpoint-url", help="an S3-compatible endpoint (env RAG_S3_ENDPOINT_URL)")
        p.add_argument(
            "--timeout",
            type=float,
            help="give up after this many seconds of retries (RAG_ARTIFACTS_TIMEOUT_SECONDS)",
        )
        p.set_defaults(func=cmd_artifacts)

    push = arts_sub.add_parser("push", help="upload a bundle as a new immutable version")
    push.add_argument("bundle")
    push.add_argument("--version", help="default: <build time>-<corpus id>")
    push.add_argument("--json", action="store_true", help="print {version, uploaded, location}")
    s3_flags(push)
    gate = arts_sub.add_parser(
        "gate",
        help="exit 1 when a bundle's recorded metric is more than --margin below the channel's version",
    )
    gate.add_argument("bundle", nargs="?", help="a local bundle (or --version: one already in S3)")
    gate.add_argument("--version", help="a pushed version to check instead of a local bundle")
    gate.add_argument("--channel", required=True, help="compare with the version this channel points at")
    gate.add_argument("--metric", default="ndcg@10", help="a metric recorded by `rag eval --bundle --record`")
    gate.add_argument("--margin", type=float, default=0.02, help="allowed drop (absolute; default 0.02)")
    s3_flags(gate)
    download = arts_sub.add_parser(
        "download", help="copy every object under an s3:// prefix into a folder (a corpus kept in S3)"
    )
    download.add_argument("source", help="s3://bucket/prefix")
    download.add_argument("--dest", required=True, help="the folder to fill (replaced whole)")
    s3_flags(download)
    promote = arts_sub.add_parser("promote", help="point a channel at a version")
    promote.add_argument("version")
    promote.add_argument("--channel", required=True)
    s3_flags(promote)
    rollback = arts_sub.add_parser("rollback", help="move a channel back to its previous version")
    rollback.add_argument("--channel", required=True)
    s3_flags(rollback)
    listing = arts_sub.add_parser("list", help="versions and the channels pointing at them")
    listing.add_argument("--json", action="store_true")
    s3_flags(listing)
    pull = arts_sub.add_parser(
        "pull", help="download, verify and atomically install a version (init container)"
    )
    which = pull.add_mutually_exclusive_group(required=True)
    which.add_argument("--channel")
    which.add_argument("--version")
    pull.add_argument("--dest", required=True, help="the bundle directory to fill (replaced whole)")
    s3_flags(pull)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "eval" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except RagError as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
