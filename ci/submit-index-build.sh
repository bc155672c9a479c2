#!/usr/bin/env bash
# Run the index build as a KubeRay RayJob (helm/rag-index-build) on the cluster kubectl points at, wait for its
# end, and say what it published: index.yml's build-index-ray job, and the same from a laptop. The job itself
# builds on the Ray cluster, gates, pushes and promotes (ci/index-job.sh in the image). Configured by env:
#
#   CORPUS             s3:// prefix of the corpus                              (required)
#   EVAL_SET           s3:// prefix of the eval set (queries.jsonl + qrels/test.tsv)   (required)
#   RAG_ARTIFACTS_URI  s3://bucket/prefix of published bundles                 (required)
#   CHANNEL            the channel the version is gated against and goes to    (default: staging)
#   VERSION            the version's name                                      (default: ray-<UTC time>)
#   RELEASE            the Helm release: one per build                         (default: index-<UTC time>)
#   NAMESPACE          where the RayJob runs                                   (default: the context's)
#   VALUES             a values file for the chart: image, workers, service account   (default: none)
#   TIMEOUT_SECONDS    how long to wait for the job's end                      (default: 21600)
#   POLL_SECONDS       how often to look                                       (default: 30)
#   HELM, KUBECTL      the binaries                                            (default: helm, kubectl)
#   RAG_S3_ENDPOINT_URL, AWS_*   read access to RAG_ARTIFACTS_URI (to tell a new version from none)
#   VENV               the virtualenv holding `rag`                            (default: .venv, else PATH)
#
# Exit status: 0 the job succeeded · 1 it failed or was refused by the gate (KubeRay's reason printed) ·
# 2 any other failure (and a wait that timed out).
# stdout: the version published, alone on the last line (nothing when the bundle was unchanged). In Actions,
# $GITHUB_OUTPUT gets version= and changed=.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CORPUS=${CORPUS:-}
EVAL_SET=${EVAL_SET:-}
CHANNEL=${CHANNEL:-staging}
stamp=$(date -u +%Y%m%d%H%M%S)
VERSION=${VERSION:-ray-$stamp}
RELEASE=${RELEASE:-index-$stamp}
NAMESPACE=${NAMESPACE:-}
VALUES=${VALUES:-}
TIMEOUT_SECONDS=${TIMEOUT_SECONDS:-21600}
POLL_SECONDS=${POLL_SECONDS:-30}
HELM=${HELM:-helm}
KUBECTL=${KUBECTL:-kubectl}
[[ $CORPUS == s3://* ]] || die "CORPUS must be an s3:// prefix (the Ray cluster reads it from there), not '$CORPUS'"
[[ $EVAL_SET == s3://* ]] || die "EVAL_SET must be an s3:// prefix, not '$EVAL_SET'"
[ -n "${RAG_ARTIFACTS_URI:-}" ] || die "RAG_ARTIFACTS_URI is not set (s3://bucket/prefix)"
require_rag

ns=() values=()
if [ -n "$NAMESPACE" ]; then ns=(--namespace "$NAMESPACE"); fi
if [ -n "$VALUES" ]; then values=(--values "$VALUES"); fi
"$HELM" upgrade --install "$RELEASE" "$ROOT/helm/rag-index-build" "${ns[@]}" "${values[@]}" \
  --set-string "corpusUri=$CORPUS,evalSetUri=$EVAL_SET,artifacts.uri=$RAG_ARTIFACTS_URI" \
  --set-string "channel=$CHANNEL,version=$VERSION" >&2
job=${RELEASE:0:50}
job=${job%-}
log "RayJob $job submitted: waiting for its end (kubectl get rayjob $job)"

deadline=$((SECONDS + TIMEOUT_SECONDS))
while :; do
  state=$("$KUBECTL" get rayjob "$job" "${ns[@]}" -o 'jsonpath={.status.jobDeploymentStatus}/{.status.jobStatus}')
  case $state in
    Complete/SUCCEEDED) break ;;
    Complete/* | Failed/*)
      why=$("$KUBECTL" get rayjob "$job" "${ns[@]}" -o 'jsonpath={.status.reason}: {.status.message}')
      log "RayJob $job ended $state: $why"
      gh_summary "### Index build on Ray failed" "" "RayJob \`$job\`: $state — $why"
      exit 1
      ;;
  esac
  ((SECONDS < deadline)) || die "RayJob $job did not end within ${TIMEOUT_SECONDS}s (last state: ${state:-none})"
  sleep "$POLL_SECONDS"
done

# The job publishes nothing when the bundle has the same files as the channel's version.
if rag artifacts list --json | python3 -c 'import json, sys; sys.exit(sys.argv[1] not in json.load(sys.stdin)["versions"])' "$VERSION"; then
  gh_output changed true
  gh_output version "$VERSION"
  gh_summary "### Index built on Ray and published" "" "version \`$VERSION\` → channel \`$CHANNEL\`"
  printf '%s\n' "$VERSION"
else
  log "RayJob $job succeeded and published nothing: the bundle is unchanged"
  gh_output changed false
fi
