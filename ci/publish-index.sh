#!/usr/bin/env bash
# Publish a built (and gated) bundle: push it to S3 as an immutable version, point a channel at it, print the
# version. Runs the same on a laptop and in GitHub Actions (index.yml); configured by env:
#
#   BUNDLE             the bundle ci/build-index.sh built                      (default: build/ci/bundle)
#   RAG_ARTIFACTS_URI  s3://bucket/prefix of published bundles                 (required)
#   CHANNEL            the channel to promote the version to                   (default: staging)
#   VERSION            the version name                                        (default: <build time>-<corpus id>)
#   RAG_MILVUS_URI     a Milvus server: the version is also loaded into its collection there, checked, and
#                      the channel's alias moves with the S3 channel                (default: unset, S3 only)
#   RAG_S3_ENDPOINT_URL, AWS_*   an S3-compatible endpoint and credentials (boto3's default chain)
#   VENV               the virtualenv holding `rag`                            (default: .venv, else PATH)
#
# stdout: the version, alone on the last line (also `version=` in $GITHUB_OUTPUT).
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUNDLE=${BUNDLE:-$ROOT/build/ci/bundle}
CHANNEL=${CHANNEL:-staging}
VERSION=${VERSION:-}
[ -n "${RAG_ARTIFACTS_URI:-}" ] || die "RAG_ARTIFACTS_URI is not set (s3://bucket/prefix)"

require_rag
pushed=$(rag artifacts push "$BUNDLE" --json ${VERSION:+--version "$VERSION"})
# the CLI's own JSON, read by Python (always beside rag) rather than by a jq the runner may not have
version=$(printf '%s' "$pushed" | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
if [ -n "${RAG_MILVUS_URI:-}" ]; then
  rag artifacts publish-milvus "$BUNDLE" --version "$version" >&2 # before promote, which moves the alias
fi
rag artifacts promote "$version" --channel "$CHANNEL" >&2
gh_output version "$version"
gh_summary "### Index published" "" "version \`$version\` → channel \`$CHANNEL\` ($RAG_ARTIFACTS_URI)"
printf '%s\n' "$version"
