"""The build's embedding stage fanned out over a Ray cluster (`rag build --ray ADDRESS`), as a Ray Data
pipeline: the texts in fixed chunks → an actor pool, each actor holding one embedder → gathered in order.

The chunks are the ones the local build embeds (`CHUNK` texts per embedder call, the same batch size), so
each text meets the same neighbours in the same padded batches and the vectors, hence every file of the
bundle, are the bytes a single-process build writes. Everything else (segmentation, BM25's global
statistics, the dense index, the manifest) stays in the Builder on the driver.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import ModelSettings, Settings
from ..errors import DistributedBuildError

__all__ = ["CHUNK", "RayEmbedding", "chunks"]

CHUNK = 512  # texts per embedder call, locally and on Ray: the unit whose batches must not change


def chunks(texts: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(offset, texts) of each `CHUNK`: how the local build and Ray cut the same texts."""
    for start in range(0, len(texts), CHUNK):
        yield start, texts[start : start + CHUNK]


class _ChunkEmbedder:
    """A Ray actor: one embedder, loaded once; embeds whole chunks as the local build does."""

    def __init__(self, settings: dict[str, Any], batch_size: int) -> None:
        import ray

        from ..models import load_embedder

        # One intra-op thread per actor, as many actors as CPUs: a model call never waits for another's.
        self.embedder = load_embedder(Settings.model_validate({**settings, "threads": 1}))
        self.batch_size = batch_size
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors, seconds = [], []
        for texts in batch["texts"]:
            started = time.perf_counter()
            vectors.append(
                self.embedder.encode(list(texts), kind="passage", batch_size=self.batch_size).astype(
                    np.float32
                )
            )
            seconds.append(time.perf_counter() - started)
        return {
            "chunk": batch["chunk"],
            "vectors": np.array([v.tobytes() for v in vectors], dtype=object),
            "node": np.array([self.node] * len(vectors), dtype=object),
            "seconds": np.array(seconds, dtype=np.float64),
        }


@dataclass
class RayEmbedding:
    """`encode(texts, batch_size, done)` on the cluster at `address`; `nodes` is where it ran, `busy_seconds`
    the actors' time inside the embedder summed over chunks (texts / busy_seconds is one actor's throughput)."""

    address: str
    settings: Settings
    actors: int = 0
    nodes: set[str] = field(default_factory=set)
    busy_seconds: float = 0.0

    def encode(
        self,
        texts: list[str],
        dim: int,
        batch_size: int,
        done: Callable[[int], None],
        write: Callable[[int, np.ndarray], None],
    ) -> None:
        """Embeds `texts`; `write(offset, vectors)` gets each chunk's float32 [n, dim] as it arrives (in any
        order; `offset` is its first text's), so the driver never gathers them in memory; `done(n)` after
        each chunk with the texts embedded so far."""
        import ray

        if not texts:
            return
        self._connect(ray)
        items = [{"chunk": i, "texts": chunk} for i, (_, chunk) in enumerate(chunks(texts))]
        actors = self.actors or max(1, int(ray.cluster_resources().get("CPU", 2)) - 1)
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _ChunkEmbedder,
            fn_constructor_kwargs={
                # The model's settings only: nothing else (no secret) travels to the workers.
                "settings": self.settings.model_dump(mode="json", include=set(ModelSettings.model_fields)),
                "batch_size": batch_size,
            },
            batch_size=1,
            batch_format="numpy",
            # Ray Data's defaults for an actor pool are what a build needs: actors SPREAD over the nodes, and
            # restarted without limit with their tasks retried when a node is lost. Except one: a chunk is
            # seconds of work, so an actor holds one at a time. With Ray Data's 4 queued per actor, the
            # first actor up (on the head, where the chunks are) took all three chunks of a small build
            # while the worker node's actor idled (seen), and a large one ends waiting on queued stragglers.
            compute=ray.data.ActorPoolStrategy(size=min(actors, len(items)), max_tasks_in_flight_per_actor=1),
            num_cpus=1,
        )
        embedded = 0
        try:
            for row in dataset.iter_rows():
                vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(-1, dim)
                write(int(row["chunk"]) * CHUNK, vectors)
                self.nodes.add(str(row["node"]))
                self.busy_seconds += float(row["seconds"])
                embedded += len(vectors)
                done(embedded)
        except Exception as exc:  # Ray's errors wrap the worker's; the build fails with the reason
            raise DistributedBuildError(
                f"embedding on Ray ({self.address}) failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _connect(self, ray: Any) -> None:
        if not ray.is_initialized():
            ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
        # The build's own progress bar advances per chunk gathered; Ray Data's bars and its execution log
        # would interleave with it (its full logs stay in the session's logs/ray-data).
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
