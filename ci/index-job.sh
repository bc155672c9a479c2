#!/usr/bin/env bash
# Build, gate and publish in one go: ci/build-index.sh, then ci/publish-index.sh unless the bundle has the same
# files as the channel's version. The entrypoint of the RayJob (helm/rag-index-build), which runs it on the Ray
# head with RAG_RAY_ADDRESS=auto so the embedding runs on every node; index.yml runs the two scripts as
# separate jobs on a runner. Configured by the env of both scripts (CORPUS, EVAL_SET, BUNDLE_OUT,
# EMBEDDING_CACHE, VERSION, QUALITY_*, RAG_MILVUS_*, RAG_*), and:
#
#   RAG_ARTIFACTS_URI  s3://bucket/prefix of published bundles                 (required)
#   CHANNEL            the channel the bundle is gated against and promoted to (default: staging)
#
# Exit status: 0 published, or unchanged (nothing to publish) · 1 refused by the gate · 2 any other failure.
# stdout: the version published, alone on the last line (nothing when unchanged).
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHANNEL=${CHANNEL:-staging}
export CHANNEL
[ -n "${RAG_ARTIFACTS_URI:-}" ] || die "RAG_ARTIFACTS_URI is not set (s3://bucket/prefix): there is nowhere to publish"
outputs=$(mktemp "${TMPDIR:-/tmp}/index-job.XXXXXX")
trap 'rm -f "$outputs"' EXIT
# build-index.sh says through GitHub's output protocol whether the bundle changed; read it from a file of our own
GITHUB_OUTPUT=$outputs "$ROOT/ci/build-index.sh"
if grep -qx 'changed=false' "$outputs"; then
  log "the bundle has the same files as the $CHANNEL version: nothing to publish"
  exit 0
fi
BUNDLE=$(sed -n 's/^bundle=//p' "$outputs" | tail -n 1) "$ROOT/ci/publish-index.sh"
