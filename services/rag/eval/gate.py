"""The quality gate: a new bundle may replace a channel's current version unless its recorded metric fell
more than a margin below the current one's. Pure: the caller fetches both manifests."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..index import Manifest

__all__ = ["GateVerdict", "quality_gate"]

# Float noise only: the same bundle scored twice gives bit-identical means, but a margin of 0 must not
# refuse a build that is equal up to rounding.
_EPSILON = 1e-9


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    message: str
    new: float
    current: float | None = None
    unchanged: bool = False  # the same files as the current version: nothing new to publish


def quality_gate(
    new: Manifest, current: Manifest | None, *, metric: str, margin: float, against: str
) -> GateVerdict:
    """Compare `new` with `current` (the version `against` names, None when there is none yet) on `metric`.

    Refused: new < current − margin. Passed, with the reason: no current version, or one that recorded no
    such metric (older builds), so there is nothing to compare with; or the very same files as the current
    version (`unchanged`: nothing new to publish). A new bundle without the metric is a configuration error:
    the gate cannot vouch for what it did not measure.
    """
    if margin < 0:
        raise ConfigError(f"quality margin must be ≥ 0, not {margin}")
    if new.evaluation is None:
        raise ConfigError(
            "the new bundle has no recorded evaluation: run `rag eval --bundle … --record` first"
        )
    if metric not in new.evaluation.metrics:
        known = ", ".join(sorted(new.evaluation.metrics))
        raise ConfigError(f"the new bundle has no metric {metric!r} (recorded: {known})")
    value = new.evaluation.metrics[metric]
    if current is None:
        return GateVerdict(
            True, f"{metric} {value:.4f}; no version on {against} yet: nothing to compare", value
        )
    evaluation = current.evaluation
    old = evaluation.metrics.get(metric) if evaluation else None
    if new.files == current.files:
        # Same corpus, configuration and model give the same checksums (the writer is deterministic): a
        # scheduled rebuild of an unchanged corpus need not become a new version.
        return GateVerdict(
            True, f"unchanged: the same files as {against} ({metric} {value:.4f})", value, old, unchanged=True
        )
    if evaluation is None or old is None:
        return GateVerdict(
            True, f"{metric} {value:.4f}; {against} recorded no {metric}: nothing to compare", value
        )
    note = ""
    if evaluation.eval_set != new.evaluation.eval_set:
        note = (
            f" (measured on another evaluation set: {evaluation.eval_set[:12]} → "
            f"{new.evaluation.eval_set[:12]}; compared anyway)"
        )
    floor = old - margin
    if value + _EPSILON < floor:
        return GateVerdict(
            False,
            f"refused: {metric} {value:.4f} < {old:.4f} − {margin:g} = {floor:.4f} ({against}){note}",
            value,
            old,
        )
    return GateVerdict(
        True, f"passed: {metric} {value:.4f} ≥ {old:.4f} − {margin:g} ({against}){note}", value, old
    )
