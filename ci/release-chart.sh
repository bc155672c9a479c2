#!/usr/bin/env bash
# Package the Helm chart and push it to an OCI registry (release.yml, on a version tag). Configured by env:
#
#   CHART_DIR          the chart                                          (default: helm/rag)
#   CHART_REGISTRY     oci://host/path to push to, e.g. oci://ghcr.io/OWNER/charts (required unless DRY_RUN=1)
#   CHART_VERSION      the chart's version; a leading v is dropped        (default: GITHUB_REF_NAME when it
#                                                                          is a tag v1.2.3, else Chart.yaml's)
#   APP_VERSION        the image version the chart deploys                (default: version in pyproject.toml)
#   OUT_DIR            where the .tgz is written                          (default: build/charts)
#   REGISTRY_USERNAME, REGISTRY_PASSWORD   `helm registry login` first when both are set (password via stdin)
#   DRY_RUN            1: print the helm commands instead of running them (default: 0)
#
# stdout: the pushed reference, oci://…/<chart>:<version>.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHART_DIR=${CHART_DIR:-$ROOT/helm/rag}
CHART_REGISTRY=${CHART_REGISTRY:-}
OUT_DIR=${OUT_DIR:-$ROOT/build/charts}
DRY_RUN=${DRY_RUN:-0}
APP_VERSION=${APP_VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -n 1)}
CHART_VERSION=${CHART_VERSION:-}
if [ -z "$CHART_VERSION" ] && [[ ${GITHUB_REF_TYPE:-} == tag && ${GITHUB_REF_NAME:-} == v[0-9]* ]]; then
  CHART_VERSION=$GITHUB_REF_NAME
fi
CHART_VERSION=${CHART_VERSION#v}
if [ -n "$CHART_VERSION" ] && ! [[ $CHART_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]]; then
  die "CHART_VERSION '$CHART_VERSION' is not a semantic version (Helm needs one)"
fi
[ -n "$CHART_REGISTRY" ] || [ "$DRY_RUN" = 1 ] || die "CHART_REGISTRY is not set (oci://host/path)"
CHART_REGISTRY=${CHART_REGISTRY:-oci://registry.invalid/charts}
[[ $CHART_REGISTRY == oci://* ]] || die "CHART_REGISTRY must start with oci://, not '$CHART_REGISTRY'"
# OCI repository names are lowercase; GitHub owners need not be
CHART_REGISTRY=${CHART_REGISTRY,,}
[ -f "$CHART_DIR/Chart.yaml" ] || die "no chart at $CHART_DIR (Chart.yaml missing)"
chart=$(sed -n 's/^name: *//p' "$CHART_DIR/Chart.yaml" | head -n 1 | tr -d "\"'")
[ -n "$chart" ] || die "$CHART_DIR/Chart.yaml has no name"
CHART_VERSION=${CHART_VERSION:-$(sed -n 's/^version: *//p' "$CHART_DIR/Chart.yaml" | head -n 1 | tr -d "\"'")}

[ "$DRY_RUN" = 1 ] || command -v helm >/dev/null || die "helm is not installed"
mkdir -p "$OUT_DIR"
run helm lint "$CHART_DIR" >&2
run helm package "$CHART_DIR" --destination "$OUT_DIR" --version "$CHART_VERSION" --app-version "$APP_VERSION" >&2
if [ -n "${REGISTRY_USERNAME:-}" ] && [ -n "${REGISTRY_PASSWORD:-}" ]; then
  host=${CHART_REGISTRY#oci://}
  host=${host%%/*}
  if [ "$DRY_RUN" = 1 ]; then
    run helm registry login "$host" --username "$REGISTRY_USERNAME" --password-stdin >&2
  else
    printf '%s' "$REGISTRY_PASSWORD" | helm registry login "$host" --username "$REGISTRY_USERNAME" --password-stdin >&2
  fi
fi
run helm push "$OUT_DIR/$chart-$CHART_VERSION.tgz" "$CHART_REGISTRY" >&2
gh_output chart "$CHART_REGISTRY/$chart:$CHART_VERSION"
printf '%s\n' "$CHART_REGISTRY/$chart:$CHART_VERSION"
