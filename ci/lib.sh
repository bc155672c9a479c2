# shellcheck shell=bash
# Shared by the ci/*.sh scripts (sourced, never run): logging, GitHub Actions outputs, finding `rag`.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() {
  log "error: $*"
  exit 2
}

# key=value for later steps of a GitHub Actions job; a no-op on a laptop.
gh_output() {
  if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"; fi
}

# Markdown for the job's summary page; a no-op on a laptop.
gh_summary() {
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then printf '%s\n' "$@" >>"$GITHUB_STEP_SUMMARY"; fi
}

# The `rag` CLI: from VENV (default: the repo's .venv, what `make install` creates) when it has one, else PATH.
require_rag() {
  local venv=${VENV:-$ROOT/.venv}
  if [ -x "$venv/bin/rag" ]; then PATH="$venv/bin:$PATH"; fi
  command -v rag >/dev/null || die "rag is not installed: run make install (or set VENV)"
}

# Run a command, or with DRY_RUN=1 print it (shell-quoted, after a "+") instead.
run() {
  if [ "${DRY_RUN:-0}" = 1 ]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}
