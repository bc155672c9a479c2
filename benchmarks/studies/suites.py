"""`make eval`: the studies that chose the defaults — SciFact retrieval and evidence, SQuAD evidence and the
abstention trade-off, every variant tried. Not part of the product: `rag eval` scores one bundle.

Bundles are built once into a work directory (the embedding cache makes variants cheap). BM25 parameters
are load-time settings and fusion parameters query-time ones, so sweeps re-score without re-embedding.
Settings are *chosen* on a tuning split (SciFact train queries; SQuAD's first half of articles) and
*reported* on held-out data, so the tuned rows are not fitted to the numbers they are judged by.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import BuildConfig, RetrievalParams, Settings
from rag.corpus import Document
from rag.eval.datasets import BeirData, load_beir, load_squad
from rag.eval.metrics import spans_overlap
from rag.eval.retrieval import retrieval_scores
from rag.index import Bm25Params, Builder, Bundle, read_manifest
from rag.models import EmbeddingModel, load_embedder, load_reranker
from rag.pipeline import Pipeline

__all__ = ["EvalRunner", "Variant", "ranked_sentences"]

log = logging.getLogger(__name__)


class _QueryMemo:
    """Wraps an embedder so each distinct query is embedded once across a sweep (passages pass through)."""

    def __init__(self, inner: EmbeddingModel) -> None:
        self.inner = inner
        self.identity = inner.identity
        self._memo: dict[str, np.ndarray] = {}

    def encode(
        self, texts: list[str], *, kind: str, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        if kind != "query":
            return self.inner.encode(texts, kind=kind, batch_size=batch_size, progress=progress)
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            for text, vector in zip(
                missing, self.inner.encode(missing, kind="query", batch_size=batch_size), strict=True
            ):
                self._memo[text] = vector
        return np.stack([self._memo[t] for t in texts])


@dataclass(frozen=True)
class Variant:
    """One evaluated setting: which bundle, BM25 parameters (load time) and retrieval parameters (query time)."""

    name: str
    bundle: str
    bm25: Bm25Params
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "bm25": self.bm25.model_dump(), **self.params}


class EvalRunner:
    def __init__(self, settings: Settings, data_dir: Path, work_dir: Path, progress: bool = True) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.work_dir = work_dir
        self.progress = progress
        self.embedder = _QueryMemo(load_embedder(settings))
        self.reranker = load_reranker(settings)
        self._bundles: dict[str, Bundle] = {}
        self._scored: dict[tuple[str, Bm25Params], Bundle] = {}  # a bundle per BM25 parameters
        self.builds: dict[str, dict[str, Any]] = {}

    # ---- bundles -----------------------------------------------------------------------------------------

    def bundle(self, name: str, documents: list[Document], config: BuildConfig) -> str:
        path = self.work_dir / "bundles" / name
        fingerprint = self.embedder.identity.fingerprint
        fresh = False
        if path.exists():
            manifest = read_manifest(path)
            fresh = manifest.build == config and manifest.embedding_model.fingerprint == fingerprint
        if not fresh:
            log.info("building %s (%d documents, unit=%s)", name, len(documents), config.unit)
            builder = Builder(self.embedder, config, cache_path=self.work_dir / "embeddings.sqlite")
            result = builder.build(documents, path, overwrite=True, progress=self.progress)
            self.builds[name] = {
                "seconds": round(result.seconds, 1),
                "embed_seconds": round(result.embed_seconds, 1),
                "embedded": result.embedded,
                "cache_hits": result.cache_hits,
                **result.manifest.counts,
                "bytes": sum(f.bytes for f in result.manifest.files.values()),
            }
        self._bundles[name] = Bundle.load(path, threads=self.settings.effective_threads())
        return name

    def pipeline(self, variant: Variant) -> Pipeline:
        key = (variant.bundle, variant.bm25)
        if key not in self._scored:
            self._scored[key] = self._bundles[variant.bundle].with_bm25(variant.bm25)
        bundle = self._scored[key]
        # Variants start from neutral parameters (no rerank, no best-sentence signal), not from the shipped
        # defaults, so reference and baseline rows stay what their names say whatever the defaults become.
        params = RetrievalParams(**{"rerank": False, "sentence_weight": 0.0, **variant.params})
        return Pipeline(bundle, self.embedder, self.reranker if params.rerank else None, params)

    # ---- SciFact -----------------------------------------------------------------------------------------

    def beir_scores(self, variant: Variant, data: BeirData, depth: int = 100) -> dict[str, float]:
        return retrieval_scores(self.pipeline(variant), data.queries, data.qrels, depth)

    def evidence_scores(
        self, variant: Variant, data: BeirData, ks: Iterable[int] = (1, 3, 10)
    ) -> dict[str, float]:
        """Share of gold evidence sentences found among the top-k ranked sentences, and in the answer."""
        pipeline = self.pipeline(variant)
        ks = tuple(ks)
        found = {k: 0 for k in ks}
        in_answer, total = 0, 0
        for qid, per_doc in data.evidence.items():
            question = data.queries[qid]
            ranking = pipeline.rank(question)
            top = [
                (e.doc_id, (e.char_start, e.char_end)) for e in ranked_sentences(pipeline, ranking, max(ks))
            ]
            answer = pipeline.compose(question, ranking, pipeline.params)
            picked = [(e.doc_id, (e.char_start, e.char_end)) for e in answer.evidence]
            for doc_id, spans in per_doc.items():
                for gold in spans:
                    total += 1
                    for k in ks:
                        found[k] += any(d == doc_id and spans_overlap(s, gold) for d, s in top[:k])
                    in_answer += any(d == doc_id and spans_overlap(s, gold) for d, s in picked)
        scores = {f"evidence_recall@{k}": found[k] / total for k in ks}
        scores["answer_evidence_recall"] = in_answer / total
        scores["gold_sentences"] = float(total)
        return scores

    def run_scifact(self) -> dict[str, Any]:
        folder = self.data_dir / "scifact"
        test, train = load_beir(folder, "test"), load_beir(folder, "train")
        base = self.settings.build_config()
        docs = self.bundle(
            "scifact-document", test.documents, replace_cfg(base, unit="document", unit_title=True)
        )

        bm25s_defaults = Bm25Params(k1=1.5, b=0.75, title_weight=1.0)
        plain = {
            "alpha": 0.4,
            "fusion": "convex",
            "bm25_top_k": 100,
            "dense_top_k": 100,
        }
        rows: list[dict[str, Any]] = []

        def evaluate(variant: Variant, role: str) -> dict[str, Any]:
            started = time.perf_counter()
            row = {
                "name": variant.name,
                "role": role,
                **variant.describe(),
                "train": self.beir_scores(variant, train),
                "test": self.beir_scores(variant, test),
            }
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            log.info(
                "%-40s train %.4f test %.4f", variant.name, row["train"]["ndcg@10"], row["test"]["ndcg@10"]
            )
            return row

        bm25_only = {"alpha": 0.0, "bm25_top_k": 1000}
        dense_only = {"alpha": 1.0, "dense_top_k": 1000}
        evaluate(Variant("bm25 (bm25s defaults k1=1.5 b=0.75)", docs, bm25s_defaults, bm25_only), "reference")
        evaluate(
            Variant(f"dense ({self.embedder.identity.name})", docs, bm25s_defaults, dense_only), "reference"
        )
        baseline = evaluate(Variant("plain hybrid (baseline)", docs, bm25s_defaults, plain), "baseline")

        # Stage 1: BM25 parameters and title field, chosen on train.
        best_bm25 = max(
            (
                evaluate(
                    Variant(
                        f"bm25 k1={k1} b={b} title×{tw}",
                        docs,
                        Bm25Params(k1=k1, b=b, title_weight=tw),
                        bm25_only,
                    ),
                    "sweep-bm25",
                )
                for k1, b, tw in itertools.product((0.9, 1.2, 1.5), (0.5, 0.75, 0.9), (1.0, 2.0))
            ),
            key=lambda r: r["train"]["ndcg@10"],
        )
        bm25 = Bm25Params(**best_bm25["bm25"])
        # Stage 2: fusion, chosen on train.
        fusion_grid = [
            {"fusion": "convex", "alpha": a, "bm25_top_k": 100, "dense_top_k": 100}
            for a in (0.3, 0.4, 0.5, 0.6, 0.7)
        ] + [{"fusion": "rrf", "rrf_k": k, "bm25_top_k": 100, "dense_top_k": 100} for k in (10, 60)]
        fused = [
            evaluate(
                Variant(
                    f"hybrid {_short(p)} bm25 k1={bm25.k1} b={bm25.b} title×{bm25.title_weight}",
                    docs,
                    bm25,
                    p,
                ),
                "sweep-fusion",
            )
            for p in fusion_grid
        ]
        # Stage 3: a document's best sentence as a second dense signal (MaxP), chosen on train.
        best_fusion = max(fused, key=lambda r: r["train"]["ndcg@10"])
        fusion_params = {k: v for k, v in best_fusion.items() if k in RetrievalParams.model_fields}
        with_sentences = [
            evaluate(
                Variant(
                    f"{best_fusion['name']} + best sentence ×{w}",
                    docs,
                    bm25,
                    {**fusion_params, "sentence_weight": w},
                ),
                "sweep-sentence",
            )
            for w in (0.2, 0.35, 0.5, 0.65)
        ]
        best_fusion = max([best_fusion, *with_sentences], key=lambda r: r["train"]["ndcg@10"])
        fusion_params = {k: v for k, v in best_fusion.items() if k in RetrievalParams.model_fields}
        # Stage 4: retrieval unit (a document ranked by its best sentence unit), with the chosen settings.
        sent = self.bundle(
            "scifact-sentence", test.documents, replace_cfg(base, unit="sentence", unit_title=False)
        )
        sent_t = self.bundle(
            "scifact-sentence-title", test.documents, replace_cfg(base, unit="sentence", unit_title=True)
        )
        unit_rows = [
            evaluate(
                Variant(
                    f"units=sentence{'+title' if b == sent_t else ''} (doc = best sentence)",
                    b,
                    bm25,
                    {**fusion_params, "bm25_top_k": 1000, "dense_top_k": 1000},
                ),
                "sweep-unit",
            )
            for b in (sent, sent_t)
        ]
        chosen = max([best_fusion, *unit_rows], key=lambda r: r["train"]["ndcg@10"])
        chosen = {**chosen, "role": "chosen"}
        rows.append(chosen)
        if self.reranker is not None:
            chosen_bundle = docs if chosen["bundle"] == docs else chosen["bundle"]
            chosen_params = {k: v for k, v in chosen.items() if k in RetrievalParams.model_fields}
            evaluate(
                Variant(
                    f"chosen + rerank top {self.settings.rerank_top_n} ({self.reranker.name})",
                    chosen_bundle,
                    bm25,
                    {**chosen_params, "rerank": True, "rerank_top_n": self.settings.rerank_top_n},
                ),
                "rerank",
            )

        # The configured settings as shipped (whatever this run's sweeps chose): what the int8-vs-fp32 and
        # model-vs-model comparisons in docs/EVALUATION.md read, at one fixed setting.
        shipped = self.settings.retrieval_params().model_dump(exclude={"rerank"})
        evaluate(
            Variant(
                "shipped defaults (settings), document units", docs, self.settings.bm25_params(), shipped
            ),
            "shipped",
        )

        # Evidence sentences (SciFact's annotated rationales), plain baseline vs chosen settings.
        evidence_plain = Variant("plain hybrid over sentences", sent, bm25s_defaults, plain)
        sentence_params = {k: v for k, v in fusion_params.items() if k != "sentence_weight"}
        evidence_ours = Variant("chosen settings over sentences+title", sent_t, bm25, sentence_params)
        evidence_docs = Variant(
            "chosen settings, document units (evidence inside the best)", docs, bm25, fusion_params
        )
        evidence = {
            v.name: {**v.describe(), **self.evidence_scores(v, test)}
            for v in (evidence_plain, evidence_ours, evidence_docs)
        }
        return {
            "counts": {
                "test": len(test.queries),
                "train": len(train.queries),
                "evidence": len(test.evidence),
            },
            "rows": rows,
            "baseline": baseline,
            "chosen": chosen,
            "evidence": evidence,
            "chosen_bm25": bm25.model_dump(),
            "chosen_fusion": fusion_params,
        }

    # ---- SQuAD -------------------------------------------------------------------------------------------

    def run_squad(
        self, chosen_bm25: Bm25Params | None, chosen_fusion: dict[str, Any] | None
    ) -> dict[str, Any]:
        data = load_squad(self.data_dir / "squad-v1.1" / "dev-v1.1.part-a.json")
        base = self.settings.build_config()
        plain_b = self.bundle(
            "squad-sentence", data.documents, replace_cfg(base, unit="sentence", unit_title=False)
        )
        title_b = self.bundle(
            "squad-sentence-title", data.documents, replace_cfg(base, unit="sentence", unit_title=True)
        )
        para_b = self.bundle(
            "squad-paragraph", data.documents, replace_cfg(base, unit="document", unit_title=True)
        )
        articles = list(dict.fromkeys(q.article for q in data.questions))
        tune_articles = set(articles[: len(articles) // 2])
        plain = {"alpha": 0.4, "fusion": "convex"}
        variants = [
            Variant(
                "plain hybrid over sentences (baseline)",
                plain_b,
                Bm25Params(k1=1.5, b=0.75, title_weight=0.0),
                plain,
            )
        ]
        for tw, alpha in itertools.product((0.0, 1.0, 2.0), (0.4, 0.6)):
            variants.append(
                Variant(
                    f"sentences+title, bm25 title×{tw}, α={alpha}",
                    title_b,
                    (chosen_bm25 or Bm25Params()).model_copy(update={"title_weight": tw}),
                    {**(chosen_fusion or {}), "alpha": alpha},
                )
            )
        for unit_weight in (0.3, 0.5, 0.7):
            variants.append(
                Variant(
                    f"paragraph units, evidence inside (unit weight {unit_weight})",
                    para_b,
                    chosen_bm25 or Bm25Params(),
                    {**(chosen_fusion or {}), "unit_weight": unit_weight},
                )
            )
        results = []
        for variant in variants:
            pipeline = self.pipeline(variant)
            per_question = []
            for q in data.questions:
                top = [e.text for e in ranked_sentences(pipeline, pipeline.rank(q.question), 3)]
                hit = [any(a in s for a in q.answers) for s in top]
                per_question.append((q.article in tune_articles, any(hit[:1]), any(hit[:3])))
            arr = np.asarray(per_question, dtype=bool)
            tune, held = arr[arr[:, 0]], arr[~arr[:, 0]]
            results.append(
                {
                    "name": variant.name,
                    **variant.describe(),
                    "tune_top1": float(tune[:, 1].mean()),
                    "tune_top3": float(tune[:, 2].mean()),
                    "heldout_top1": float(held[:, 1].mean()),
                    "heldout_top3": float(held[:, 2].mean()),
                    "all_top1": float(arr[:, 1].mean()),
                    "all_top3": float(arr[:, 2].mean()),
                }
            )
            log.info(
                "%-45s top1 %.4f top3 %.4f", variant.name, results[-1]["all_top1"], results[-1]["all_top3"]
            )
        best = max(results[1:], key=lambda r: r["tune_top1"] + r["tune_top3"])
        best_variant = variants[results.index(best)]
        abstention = self._abstention(best_variant, data.questions, tune_articles)
        return {
            "questions": len(data.questions),
            "rows": results,
            "baseline": results[0],
            "chosen": best,
            "abstention": abstention,
        }

    def _abstention(self, variant: Variant, questions: list[Any], tune_articles: set[str]) -> dict[str, Any]:
        """Confidence with the full corpus vs. a corpus without the question's own article (no answer there)."""
        pipeline = self.pipeline(variant)
        full, without, hits, tune = [], [], [], []
        for q in questions:
            answered = pipeline.answer(q.question)
            excluded = pipeline.answer(q.question, filters={"article": {"not": q.article}})
            full.append(answered.confidence)
            without.append(excluded.confidence)
            hits.append(any(a in e.text for e in answered.evidence for a in q.answers))
            tune.append(q.article in tune_articles)
        f, w, h, tu = (np.asarray(x) for x in (full, without, hits, tune))
        sweep = []
        for threshold in np.round(np.arange(0.0, 0.81, 0.025), 3):
            sweep.append(
                {
                    "threshold": float(threshold),
                    "abstain_full": float((f < threshold).mean()),
                    "abstain_without_article": float((w < threshold).mean()),
                    "answered_correct_full": float(((f >= threshold) & h).mean()),
                    "tune_j": float((w[tu] < threshold).mean() - (f[tu] < threshold).mean()),
                }
            )
        # Youden's J on the tuning half: abstain where no answer exists, answer where one does.
        chosen = max(sweep, key=lambda r: r["tune_j"])
        return {
            "variant": variant.name,
            "sweep": sweep,
            "chosen": chosen,
            "rule": "threshold maximising abstain(without article) − abstain(full corpus), tuning half",
        }


def ranked_sentences(pipeline: Pipeline, ranking: Any, k: int) -> list[Any]:
    """The top-k evidence candidates as Evidence records: the same path the answer's evidence comes from."""
    rows, relevance = pipeline.evidence.candidates(ranking, pipeline.params)
    return [pipeline.units.evidence(int(r), float(v)) for r, v in zip(rows[:k], relevance[:k], strict=True)]


def replace_cfg(config: BuildConfig, **changes: Any) -> BuildConfig:
    return config.model_copy(update=changes)


def _short(params: dict[str, Any]) -> str:
    if params.get("fusion") == "rrf":
        return f"rrf k={params['rrf_k']}"
    return f"convex α={params['alpha']}"


def run_eval(
    settings: Settings,
    data_dir: Path,
    work_dir: Path,
    suites: list[str],
    out_json: Path,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    runner = EvalRunner(settings, data_dir, work_dir)
    report: dict[str, Any] = {"model": runner.embedder.identity.name, "settings": {}}
    bm25, fusion = None, None
    if "scifact" in suites:
        report["scifact"] = runner.run_scifact()
        bm25 = Bm25Params(**report["scifact"]["chosen_bm25"])
        fusion = report["scifact"]["chosen_fusion"]
    if "squad" in suites:
        report["squad"] = runner.run_squad(bm25, fusion)
    report["builds"] = runner.builds
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=2, default=str))
    from studies.report import render_tables

    echo(render_tables(report))
    return report
