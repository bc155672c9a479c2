"""Query expansion on SciFact: document recall and nDCG with and without LLM paraphrases (docs/EVALUATION.md).

No LLM weights can be had here, so the paraphrases are scripted and served by the tests' OpenAI-compatible
server process (tests/generation/openai_server.py); the service's own client, prompt, reply parsing and RRF
fusion (rag.generation) run unchanged over loopback HTTP. Two scripted sources:

  rewrite   deterministic rewrites of the claim, the kind an LLM asked for paraphrases writes, made without
            looking at any relevance judgement: (1) abbreviations expanded or contracted using the long forms
            defined in the corpus itself ("chronic kidney disease (CKD)"), (2) a fixed biomedical synonym list
            ("decreases" → "reduces", "mice" → "mouse models"), (3) the claim as a yes/no question.
  sibling   other SciFact claims (train or test) judged relevant to one of the same abstracts: real,
            human-written rephrasings. Chosen with the test qrels, so this is an oracle — an upper bound on
            what paraphrases that hit the right abstract could do, not a number a deployment would see.

    python benchmarks/bench_expansion.py                      # the SciFact sentence bundle in build/bench
    python benchmarks/bench_expansion.py --limit 30           # a dry run

Needs build/bench/bundle-scifact-hnsw (built with build/bench/minilm.onnx-int8, backend onnx).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
from rag_testkit.tools import free_port, stop, wait_for  # noqa: E402

from rag.config import Settings  # noqa: E402
from rag.eval.metrics import ndcg_at_k, recall_at_k  # noqa: E402
from rag.generation.client import ChatClient  # noqa: E402
from rag.generation.expansion import expanded_ranking, expansion_messages, parse_paraphrases  # noqa: E402
from rag.pipeline import (  # noqa: E402
    Pipeline,
    Timings,
)

SERVER = ROOT / "tests" / "generation" / "openai_server.py"

SYNONYMS = {
    "is associated with": "is linked to",
    "are associated with": "are linked to",
    "associated with": "linked to",
    "does not affect": "has no effect on",
    "required for": "necessary for",
    "increases": "raises",
    "increased": "elevated",
    "increase": "rise",
    "decreases": "reduces",
    "decreased": "reduced",
    "decrease": "reduction",
    "reduces": "lowers",
    "inhibits": "suppresses",
    "inhibit": "suppress",
    "promotes": "enhances",
    "promote": "enhance",
    "enhances": "boosts",
    "induces": "triggers",
    "causes": "leads to",
    "prevents": "protects against",
    "activates": "stimulates",
    "regulates": "controls",
    "impairs": "disrupts",
    "correlates with": "is related to",
    "patients": "individuals",
    "mice": "mouse models",
    "mouse": "murine",
    "risk": "likelihood",
    "mortality": "death rate",
    "therapy": "treatment",
    "treatment": "therapy",
    "cancer": "tumor",
    "tumor": "cancer",
    "tumour": "cancer",
    "disease": "disorder",
    "effective": "efficacious",
    "higher": "greater",
    "lower": "reduced",
    "elderly": "older adults",
    "children": "pediatric patients",
    "women": "females",
    "men": "males",
}
_SYNONYM = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, SYNONYMS), key=len, reverse=True)) + r")\b", re.I
)
_ABBR = re.compile(r"\(([A-Z][A-Za-z0-9-]*[A-Z][A-Za-z0-9-]*)\)")


def echo(message: str) -> None:
    print(message, flush=True)


# ---- scripted paraphrases ----------------------------------------------------------------------------------


def mine_abbreviations(texts: list[str]) -> dict[str, str]:
    """ABBR → its most frequent long form "w1 w2 ... (ABBR)" in the corpus (a Schwartz–Hearst-style match:
    the long form starts with the abbreviation's first letter and holds its letters in order)."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for text in texts:
        for m in _ABBR.finditer(text):
            abbr = m.group(1)
            letters = [c.lower() for c in abbr if c.isalpha()]
            if not 2 <= len(letters) <= 8:
                continue
            words = text[max(0, m.start() - 200) : m.start()].split()[-(len(letters) + 2) :]
            for k in range(1, len(words) + 1):
                candidate = words[-k:]
                if candidate[0][:1].lower() != letters[0]:
                    continue
                joined, pos = " ".join(candidate).lower(), 0
                for c in letters:
                    pos = joined.find(c, pos) + 1
                    if pos == 0:
                        break
                else:
                    if k >= 2:
                        counts[abbr][" ".join(candidate).strip(",;:")] += 1
                    break
    return {abbr: c.most_common(1)[0][0] for abbr, c in counts.items() if c.most_common(1)[0][1] >= 2}


def rewrite_abbreviations(claim: str, abbreviations: dict[str, str]) -> str | None:
    out = claim
    for abbr, long in abbreviations.items():
        if re.search(rf"(?<![\w-]){re.escape(abbr)}(?![\w-])", out) and long.lower() not in out.lower():
            out = re.sub(rf"(?<![\w-]){re.escape(abbr)}(?![\w-])", long, out)
    return out if out != claim else None


def rewrite_synonyms(claim: str) -> str | None:
    def swap(m: re.Match[str]) -> str:
        word = SYNONYMS[m.group(0).lower()]
        return word[:1].upper() + word[1:] if m.group(0)[:1].isupper() else word

    out = _SYNONYM.sub(swap, claim)
    return out if out != claim else None


def as_question(claim: str) -> str:
    body = claim.strip().rstrip(".")
    if body[:1].isupper() and not body[1:2].isupper():  # keep "ADAR1", "IL-6" as written
        body = body[:1].lower() + body[1:]
    return f"Is it true that {body}?"


def rewrites(claim: str, abbreviations: dict[str, str]) -> list[str]:
    candidates = [rewrite_abbreviations(claim, abbreviations), rewrite_synonyms(claim), as_question(claim)]
    return [c for c in candidates if c]


def siblings(
    test: dict[str, set[str]], train: dict[str, set[str]], texts: dict[str, str], n: int
) -> dict[str, list[str]]:
    by_doc: dict[str, set[str]] = collections.defaultdict(set)
    for qrels in (test, train):
        for qid, docs in qrels.items():
            for doc in docs:
                by_doc[doc].add(qid)
    out = {}
    for qid, docs in test.items():
        others = sorted(set().union(*(by_doc[d] for d in docs)) - {qid}, key=int)
        out[qid] = [texts[o] for o in others if texts[o] != texts[qid]][:n]
    return out


# ---- the run -----------------------------------------------------------------------------------------------


def read_qrels(path: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = collections.defaultdict(set)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if int(row["score"]) > 0:
                out[row["query-id"]].add(row["corpus-id"])
    return dict(out)


def documents(pipeline: Pipeline, units: Any) -> list[str]:
    seen: dict[str, None] = {}
    for unit in units.tolist():
        seen.setdefault(pipeline.bundle.documents[pipeline.bundle.seg.unit_doc[unit]].id, None)
    return list(seen)


def scores(ranked: list[str], relevant: set[str]) -> dict[str, float]:
    judged = dict.fromkeys(relevant, 1)
    return {
        "ndcg@10": ndcg_at_k(ranked, judged, 10),
        "recall@10": recall_at_k(ranked, judged, 10),
        "recall@100": recall_at_k(ranked, judged, 100),
    }


async def run_variant(
    pipeline: Pipeline, client: ChatClient | None, queries: dict[str, str], qrels: dict[str, set[str]], n: int
) -> dict[str, Any]:
    params = pipeline.params.model_copy(update={"rerank": False})
    per_query: dict[str, dict[str, float]] = {}
    expansions: list[int] = []
    seconds: list[float] = []
    for qid, question in queries.items():
        paraphrases: list[str] = []
        if client is not None:
            completion = await client.complete(expansion_messages(question, n), max_tokens=96 * n)
            paraphrases = parse_paraphrases(completion.text, question, n)
        expansions.append(len(paraphrases))
        started = time.perf_counter()
        ranking = expanded_ranking(pipeline, [question, *paraphrases], params, None, Timings())
        seconds.append(time.perf_counter() - started)
        per_query[qid] = scores(documents(pipeline, ranking.units), qrels[qid])
    means = {
        m: round(statistics.fmean(q[m] for q in per_query.values()), 4)
        for m in ("ndcg@10", "recall@10", "recall@100")
    }
    return {
        "metrics": means,
        "per_query": per_query,
        "mean_paraphrases": round(statistics.fmean(expansions), 2),
        "retrieval_ms_mean": round(1000 * statistics.fmean(seconds), 1),
    }


def compare(base: dict[str, Any], other: dict[str, Any], metric: str) -> dict[str, int]:
    up = sum(other["per_query"][q][metric] > base["per_query"][q][metric] + 1e-9 for q in base["per_query"])
    down = sum(other["per_query"][q][metric] < base["per_query"][q][metric] - 1e-9 for q in base["per_query"])
    return {"better": up, "worse": down}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "build/bench/bundle-scifact-hnsw")
    parser.add_argument("--model", default=str(ROOT / "build/bench/minilm.onnx-int8"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/scifact")
    parser.add_argument("--n", type=int, default=3, help="paraphrases asked for per question")
    parser.add_argument("--limit", type=int, default=0, help="first N test queries only (a dry run)")
    parser.add_argument("--out", type=Path, default=ROOT / "build/bench/expansion.json")
    args = parser.parse_args()

    texts = {
        (r := json.loads(line))["_id"]: r["text"]
        for line in (args.data / "queries.jsonl").read_text().splitlines()
        if line.strip()
    }
    test, train = read_qrels(args.data / "qrels/test.tsv"), read_qrels(args.data / "qrels/train.tsv")
    queries = {qid: texts[qid] for qid in sorted(test, key=int)}
    if args.limit:
        queries = dict(list(queries.items())[: args.limit])

    settings = Settings(backend="onnx", embedding_model=args.model, reranker_model=None, threads=1)
    echo(f"loading {args.bundle} with {args.model} (onnx)")
    pipeline = Pipeline.from_settings(settings, args.bundle)
    corpus = [d.text for d in pipeline.bundle.documents]
    abbreviations = mine_abbreviations(corpus)
    echo(f"{len(abbreviations)} abbreviations defined in the corpus")
    sources = {
        "rewrite": {qid: rewrites(q, abbreviations) for qid, q in queries.items()},
        "sibling": siblings(test, train, texts, args.n),
    }

    port = free_port()
    server = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    report: dict[str, Any] = {
        "bundle": str(args.bundle),
        "model": args.model,
        "queries": len(queries),
        "n": args.n,
        "abbreviations_mined": len(abbreviations),
        "variants": {},
    }
    try:
        wait_for(f"{url}/_control/health", timeout=30, process=server)

        async def run_all() -> None:
            report["variants"]["no expansion"] = await run_variant(pipeline, None, queries, test, args.n)
            for name, paraphrases in sources.items():
                # Longest question first: a rule matches by substring, and one claim can prefix another.
                rules = [
                    {
                        "contains": f"Question: {' '.join(q.split())}",
                        "content": "\n".join(paraphrases.get(qid, [])),
                    }
                    for qid, q in sorted(queries.items(), key=lambda item: -len(item[1]))
                ]
                httpx.post(f"{url}/_control/script", json={"rules": rules}, timeout=30).raise_for_status()
                client = ChatClient(url, "scripted", timeout=10, retries=0)
                try:
                    report["variants"][name] = await run_variant(pipeline, client, queries, test, args.n)
                finally:
                    await client.aclose()
                examples = [(queries[q], paraphrases.get(q, [])) for q in list(queries)[:3]]
                report["variants"][name]["examples"] = examples

        asyncio.run(run_all())
    finally:
        stop(server)

    base = report["variants"]["no expansion"]
    echo(f"\n{len(queries)} SciFact test queries, documents ranked by their best sentence unit\n")
    echo(
        "| variant | paraphrases / query | nDCG@10 | R@10 | R@100 | R@10 better / worse | R@100 better / worse | retrieval ms |"
    )
    echo("|---|---|---|---|---|---|---|---|")
    for name, variant in report["variants"].items():
        m = variant["metrics"]
        r10, r100 = compare(base, variant, "recall@10"), compare(base, variant, "recall@100")
        variant["vs_no_expansion"] = {"recall@10": r10, "recall@100": r100}
        echo(
            f"| {name} | {variant['mean_paraphrases']} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | "
            f"{m['recall@100']:.4f} | {r10['better']} / {r10['worse']} | {r100['better']} / {r100['worse']} | "
            f"{variant['retrieval_ms_mean']} |"
        )
    for variant in report["variants"].values():
        variant.pop("per_query")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    echo(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
