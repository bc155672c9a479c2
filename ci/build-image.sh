#!/usr/bin/env bash
# Build the service image with its models baked in, tagged with the git sha and the project version. Wraps
# `podman build` / `docker build` over the Dockerfile; image.yml takes its tags and build args from a
# DRY_RUN of this script, so a laptop build and CI's agree. Configured by env:
#
#   IMAGE            repository to tag                                   (default: localhost/rag)
#   MODEL_SOURCE     local: copy image/models/{embedder,reranker} (ONNX folders, ci/export-models.sh);
#                    hub: download and export inside the build           (default: local)
#   QUANTIZE         int8, or empty/none for fp32 (hub exports)          (default: int8)
#   EMBEDDING_MODEL, RERANKER_MODEL   hub ids for MODEL_SOURCE=hub       (default: the Dockerfile's)
#   BASE_IMAGE       every stage's base                                  (default: python:3.11-slim)
#   GIT_SHA          the sha tag                                         (default: git rev-parse --short=12 HEAD)
#   VERSION          the version tag                                     (default: version in pyproject.toml)
#   CONTAINER_TOOL   podman or docker                                    (default: podman if installed, else docker)
#   CA_BUNDLE        CA certificates for pip, a build secret never kept in a layer
#                                                                        (default: the system bundle if present)
#   PUSH             1: push both tags after the build                   (default: 0)
#   DRY_RUN          1: print the commands instead of running them       (default: 0)
#
# stdout: the image references built, one per line (also image/sha/version/tags in $GITHUB_OUTPUT).
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE=${IMAGE:-localhost/rag}
MODEL_SOURCE=${MODEL_SOURCE:-local}
QUANTIZE=${QUANTIZE-int8}
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
PUSH=${PUSH:-0}
DRY_RUN=${DRY_RUN:-0}

case $MODEL_SOURCE in
  local | hub) ;;
  *) die "MODEL_SOURCE must be local or hub, not '$MODEL_SOURCE'" ;;
esac
case $QUANTIZE in
  int8) ;;
  "" | none) QUANTIZE="" ;;
  *) die "QUANTIZE must be int8 or none, not '$QUANTIZE'" ;;
esac
if [ "$MODEL_SOURCE" = local ] && [ "$DRY_RUN" != 1 ] && [ ! -f "$ROOT/image/models/embedder/rag_model.json" ]; then
  die "MODEL_SOURCE=local needs image/models/embedder: run ci/export-models.sh (or MODEL_SOURCE=hub)"
fi

GIT_SHA=${GIT_SHA:-$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || true)}
[ -n "$GIT_SHA" ] || die "GIT_SHA is not set and $ROOT is not a git checkout"
VERSION=${VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -n 1)}
[ -n "$VERSION" ] || die "VERSION is not set and pyproject.toml has no version"
for tag in "$GIT_SHA" "$VERSION"; do
  [[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "'$tag' is not a valid image tag"
done

if [ -z "${CONTAINER_TOOL:-}" ]; then
  CONTAINER_TOOL=$(command -v podman || command -v docker || true)
fi
[ -n "$CONTAINER_TOOL" ] || [ "$DRY_RUN" = 1 ] || die "neither podman nor docker is installed (CONTAINER_TOOL)"
CONTAINER_TOOL=${CONTAINER_TOOL:-docker}
CA_BUNDLE=${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}

build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "MODEL_SOURCE=$MODEL_SOURCE" --build-arg "QUANTIZE=$QUANTIZE")
[ -z "${EMBEDDING_MODEL:-}" ] || build_args+=(--build-arg "EMBEDDING_MODEL=$EMBEDDING_MODEL")
[ -z "${RERANKER_MODEL:-}" ] || build_args+=(--build-arg "RERANKER_MODEL=$RERANKER_MODEL")
command=("$CONTAINER_TOOL" build)
# podman's default OCI format drops HEALTHCHECK; docker writes its own format anyway
[[ ${CONTAINER_TOOL##*/} != podman ]] || command+=(--format docker)
command+=("${build_args[@]}")
[ -z "$CA_BUNDLE" ] || [ ! -f "$CA_BUNDLE" ] || command+=(--secret "id=cacert,src=$CA_BUNDLE")
command+=(
  --label "org.opencontainers.image.revision=$GIT_SHA"
  --label "org.opencontainers.image.version=$VERSION"
  -t "$IMAGE:$GIT_SHA" -t "$IMAGE:$VERSION" "$ROOT"
)

run "${command[@]}" >&2
if [ "$PUSH" = 1 ]; then
  run "$CONTAINER_TOOL" push "$IMAGE:$GIT_SHA" >&2
  run "$CONTAINER_TOOL" push "$IMAGE:$VERSION" >&2
fi

gh_output image "$IMAGE"
gh_output sha "$GIT_SHA"
gh_output version "$VERSION"
gh_output tags "$IMAGE:$GIT_SHA,$IMAGE:$VERSION"
gh_output quantize "$QUANTIZE"
printf '%s\n' "$IMAGE:$GIT_SHA" "$IMAGE:$VERSION"
