"""Build progress, per stage: the CLI draws bars from it, an ingestion job stores it in its status.

Stages, in order: `segment` (documents), `embed` (texts to embed: units, then sentences for passage/document
units; cache hits count as done at once), `index` (steps: store, BM25, dense index, manifest).
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["STAGES", "BuildProgress", "TqdmProgress"]

STAGES = ("segment", "embed", "index")


class BuildProgress(Protocol):
    def __call__(self, stage: str, done: int, total: int) -> None:
        """`done` of `total` in `stage` so far (monotonic within a stage; called at least once at the end)."""
        ...


class TqdmProgress:
    """One tqdm bar per stage with its rate (items/s), on stderr; each bar closes when its stage is done."""

    def __init__(self, disable: bool = False) -> None:
        self.disable = disable
        self._bars: dict[str, Any] = {}
        self._units = {"segment": "doc", "embed": "text", "index": "step"}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            for other in list(self._bars):  # a new stage starts: the earlier ones are done
                self._bars.pop(other).close()
            bar = self._bars[stage] = tqdm(
                total=total,
                desc=stage,
                unit=self._units.get(stage, "it"),
                disable=self.disable,
                smoothing=0.1,
            )
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
