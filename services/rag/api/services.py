"""One worker's services, built once per app and handed to every route: its state (pipeline, cache,
admission), the answer service, hot reload, the generation layer and ingestion jobs; and their lifetime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Request

from ..config import Settings
from ..errors import RagError
from ..pipeline import Pipeline
from .answering import AnswerService
from .generation import GenerationRoute
from .ingest import IngestService
from .reload import Reloader
from .state import ServiceState

__all__ = ["Services", "load_pipeline", "services"]


def load_pipeline(settings: Settings) -> Pipeline:
    return Pipeline.from_settings(settings, settings.bundle_dir)


@dataclass(frozen=True)
class Services:
    settings: Settings
    state: ServiceState
    answers: AnswerService
    reloader: Reloader
    generation: GenerationRoute
    ingest: IngestService

    @classmethod
    def create(
        cls, settings: Settings, pipeline: Pipeline | None, preload_error: RagError | None = None
    ) -> Services:
        state = ServiceState(settings, pipeline, preload_error)
        generation = GenerationRoute(
            settings
        )  # without RAG_GENERATION_BASE_URL it never loads the LLM client
        return cls(
            settings=settings,
            state=state,
            answers=AnswerService(state, generation),
            reloader=Reloader(settings, state),
            generation=generation,
            ingest=IngestService(settings, state),
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The app's lifespan. Loading runs beside the server, so /health answers and /ready says "starting"
        meanwhile; a query that reaches a worker still loading waits for it (gunicorn's other workers may
        already be ready)."""
        state, settings = self.state, self.settings
        state.install_drain_handler()
        loader = asyncio.get_running_loop().run_in_executor(
            None, state.start, lambda: load_pipeline(settings)
        )
        state.settled = loader
        polling = (
            asyncio.create_task(self.reloader.poll_forever())
            if self.reloader.enabled and settings.reload_interval_seconds > 0
            else None
        )
        try:
            await self.ingest.start()
            try:
                yield
            finally:
                await self.ingest.stop()
        finally:
            if polling is not None:
                polling.cancel()
            state.stop()
            await self.generation.aclose()


def services(request: Request) -> Services:
    """The services of the app serving this request (a FastAPI dependency)."""
    found: Services = request.app.state.services
    return found
