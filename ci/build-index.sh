#!/usr/bin/env bash
# Build an index bundle, score it on an evaluation set, and refuse it when its quality fell below the version
# on the target channel. Runs the same on a laptop and in GitHub Actions (index.yml); configured by env
# (defaults are paths in the repo; relative paths given are taken from the current directory):
#
#   CORPUS             the corpus: a folder/file, or an s3://bucket/prefix      (default: sample-corpus)
#   EVAL_SET           BEIR-layout evaluation set for that corpus: queries.jsonl + qrels/test.tsv, a folder
#                      or an s3://bucket/prefix                                 (default: ci/eval-set)
#   BUNDLE_OUT         where the bundle is built (replaced whole)              (default: build/ci/bundle)
#   EMBEDDING_CACHE    embedding cache (SQLite); rebuilds embed only changes   (default: build/ci/embeddings.sqlite)
#   RAG_ARTIFACTS_URI  s3://bucket/prefix of published bundles; unset: no gate (nothing to compare with)
#   CHANNEL            the channel the bundle is meant for                     (default: staging)
#   QUALITY_METRIC     the metric the gate compares                            (default: ndcg@10)
#   QUALITY_MARGIN     the largest allowed drop, absolute                      (default: 0.02)
#   RAG_S3_ENDPOINT_URL, AWS_*   an S3-compatible endpoint and credentials (boto3's default chain)
#   RAG_*              model and retrieval settings, as for `rag build` / the server (one Settings object)
#   VENV               the virtualenv holding `rag`                            (default: .venv, else PATH)
#
# Exit status: 0 built and passed the gate · 1 refused by the gate · 2 any other failure.
# On success the bundle in BUNDLE_OUT carries its metrics in manifest.json; ci/publish-index.sh pushes it.
# In Actions, $GITHUB_OUTPUT gets bundle= and changed= (false: the same files as the channel's version).
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CORPUS=${CORPUS:-$ROOT/sample-corpus}
EVAL_SET=${EVAL_SET:-$ROOT/ci/eval-set}
BUNDLE_OUT=${BUNDLE_OUT:-$ROOT/build/ci/bundle}
EMBEDDING_CACHE=${EMBEDDING_CACHE:-$ROOT/build/ci/embeddings.sqlite}
CHANNEL=${CHANNEL:-staging}
QUALITY_METRIC=${QUALITY_METRIC:-ndcg@10}
QUALITY_MARGIN=${QUALITY_MARGIN:-0.02}

[[ $EVAL_SET == s3://* || -d $EVAL_SET ]] \
  || die "EVAL_SET $EVAL_SET is not a folder or an s3:// prefix (queries.jsonl + qrels/test.tsv)"
require_rag

work=$(mktemp -d "${TMPDIR:-/tmp}/build-index.XXXXXX")
trap 'rm -rf "$work"' EXIT

eval_set=$EVAL_SET
if [[ $EVAL_SET == s3://* ]]; then
  eval_set=$work/eval-set
  rag artifacts download "$EVAL_SET" --dest "$eval_set"
fi

corpus=$CORPUS
if [[ $CORPUS == s3://* ]]; then
  corpus=$work/corpus
  rag artifacts download "$CORPUS" --dest "$corpus"
elif [ ! -e "$CORPUS" ]; then
  die "CORPUS $CORPUS does not exist (a folder, a file, or an s3:// prefix)"
fi

mkdir -p "$(dirname "$BUNDLE_OUT")" "$(dirname "$EMBEDDING_CACHE")"
rag build "$corpus" --out "$BUNDLE_OUT" --force --quiet --cache "$EMBEDDING_CACHE"
rag eval --bundle "$BUNDLE_OUT" --eval-set "$eval_set" --record --json-out "$BUNDLE_OUT.eval.json"
gh_output bundle "$BUNDLE_OUT"

if [ -z "${RAG_ARTIFACTS_URI:-}" ]; then
  log "RAG_ARTIFACTS_URI is not set: no published version to compare with, gate skipped"
  gh_output changed true
  exit 0
fi
set +e
verdict=$(rag artifacts gate "$BUNDLE_OUT" --channel "$CHANNEL" --metric "$QUALITY_METRIC" \
  --margin "$QUALITY_MARGIN" 2>&1)
status=$?
set -e
printf '%s\n' "$verdict"
gh_summary "### Index quality gate ($CHANNEL)" "" "$verdict"
# index.yml publishes only a changed bundle: a nightly rebuild of the same corpus is not a new version
if [[ $verdict == *"quality gate: unchanged"* ]]; then gh_output changed false; else gh_output changed true; fi
exit "$status"
