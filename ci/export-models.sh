#!/usr/bin/env bash
# Export the serving models to ONNX into image/models/{embedder,reranker}: what the image copies in with
# MODEL_SOURCE=local (ci/build-image.sh). image.yml keeps the result in the actions cache between runs, so the
# download and export happen once per model pair. Needs the torch and export extras (make install).
# Configured by env:
#
#   EMBEDDING_MODEL   hub id, local folder or pkg:<module>               (default: intfloat/e5-base-v2)
#   RERANKER_MODEL    the cross-encoder; empty: none                     (default: BAAI/bge-reranker-base)
#   QUANTIZE          int8, or empty/none for fp32                       (default: int8)
#   MODELS_DIR        the folder the image build copies                  (default: image/models)
#   FORCE             1: export again even if MODELS_DIR holds these models (default: 0)
#   VENV              the virtualenv holding `rag`                       (default: .venv, else PATH)
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EMBEDDING_MODEL=${EMBEDDING_MODEL:-intfloat/e5-base-v2}
RERANKER_MODEL=${RERANKER_MODEL-BAAI/bge-reranker-base}
QUANTIZE=${QUANTIZE-int8}
MODELS_DIR=${MODELS_DIR:-$ROOT/image/models}
FORCE=${FORCE:-0}
case $QUANTIZE in
  int8) ;;
  "" | none) QUANTIZE="" ;;
  *) die "QUANTIZE must be int8 or none, not '$QUANTIZE'" ;;
esac

# rag_model.json names the model each folder was exported from: a restored cache for another pair is redone.
exported_from() {
  [ -f "$1/rag_model.json" ] && grep -o '"source_model": *"[^"]*"' "$1/rag_model.json" | sed 's/.*: *"\(.*\)"/\1/'
}
if [ "$FORCE" != 1 ] && [ "$(exported_from "$MODELS_DIR/embedder" || true)" = "$EMBEDDING_MODEL" ] &&
  { [ -z "$RERANKER_MODEL" ] || [ "$(exported_from "$MODELS_DIR/reranker" || true)" = "$RERANKER_MODEL" ]; }; then
  log "$MODELS_DIR already holds $EMBEDDING_MODEL${RERANKER_MODEL:+ and $RERANKER_MODEL}: nothing to do"
  exit 0
fi

require_rag
RAG_EMBEDDING_MODEL=$EMBEDDING_MODEL RAG_RERANKER_MODEL=$RERANKER_MODEL \
  rag models preload --dest "$MODELS_DIR" --backend onnx --force ${QUANTIZE:+--quantize "$QUANTIZE"}
