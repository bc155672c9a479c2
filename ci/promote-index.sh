#!/usr/bin/env bash
# Promote a published version to another channel (staging → prod), after the same quality gate build-index
# applies: the version's recorded metric may not fall more than QUALITY_MARGIN below what CHANNEL serves now.
# Configured by env:
#
#   VERSION            the version to promote                                  (required)
#   RAG_ARTIFACTS_URI  s3://bucket/prefix of published bundles                 (required)
#   CHANNEL            the channel to move                                     (default: prod)
#   QUALITY_METRIC     the metric the gate compares                            (default: ndcg@10)
#   QUALITY_MARGIN     the largest allowed drop, absolute                      (default: 0.02)
#   RAG_MILVUS_URI     set: the channel's Milvus alias moves too (the version published there first)
#   RAG_S3_ENDPOINT_URL, AWS_*   an S3-compatible endpoint and credentials (boto3's default chain)
#   VENV               the virtualenv holding `rag`                            (default: .venv, else PATH)
#
# Exit status: 0 promoted · 1 refused by the gate (the channel does not move) · 2 any other failure.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION=${VERSION:-}
CHANNEL=${CHANNEL:-prod}
QUALITY_METRIC=${QUALITY_METRIC:-ndcg@10}
QUALITY_MARGIN=${QUALITY_MARGIN:-0.02}
[ -n "$VERSION" ] || die "VERSION is not set (the version to promote)"
[ -n "${RAG_ARTIFACTS_URI:-}" ] || die "RAG_ARTIFACTS_URI is not set (s3://bucket/prefix)"

require_rag
rag artifacts gate --version "$VERSION" --channel "$CHANNEL" --metric "$QUALITY_METRIC" --margin "$QUALITY_MARGIN"
rag artifacts promote "$VERSION" --channel "$CHANNEL"
gh_summary "### Index promoted" "" "version \`$VERSION\` → channel \`$CHANNEL\`"
