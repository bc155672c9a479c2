"""The generation layer over the one Pipeline.

    question ─► self-query filter ∥ n paraphrases      (LLM, concurrently; stages "self_query", "expand")
             ─► Pipeline: rank each phrasing → RRF → rerank → evidence → extractive answer or abstention
             ─► prompt with the evidence numbered → completion, streamed or not   (LLM; stage "generate")
             ─► post-check (citations, numbers) → generated answer, or the extractive one and the reason

The extractive answer is always computed and always returned; generation only adds to it. LLM stages are
timed into the same `timings_ms` as the pipeline's (so they reach `rag_stage_seconds`), and every LLM call
is reported in `Outcome.calls` for the API's metrics. Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from ..config import RetrievalParams, Settings
from ..errors import GenerationError
from ..pipeline import Answer, Pipeline, Timings
from .breaker import CircuitBreaker
from .check import check_answer
from .client import ChatClient
from .expansion import expanded_ranking, expansion_messages, parse_paraphrases
from .prompt import PromptTemplate
from .schemas import Citation, FallbackReason, GenerationInfo, Usage
from .self_query import FilterSchema, merge_filters, parse_filter, self_query_messages

__all__ = ["GenerationService", "LlmCall", "Outcome", "Prepared"]

log = logging.getLogger("rag.generation")

_T = TypeVar("_T")
Run = Callable[[Callable[[], _T]], Awaitable[_T]]
Stage = Literal["generate", "expand", "self_query"]
Mode = Literal["extractive", "generative"]
_TOKENS_PER_PARAPHRASE = 96
_SELF_QUERY_TOKENS = 256


@dataclass(frozen=True)
class LlmCall:
    stage: Stage
    seconds: float
    usage: Usage | None = None
    failure: str | None = None  # the GenerationError reason, when the call failed


@dataclass
class Prepared:
    """Retrieval done (with the LLM's help, if configured); the answer may still be generated."""

    question: str
    answer: Answer
    info: GenerationInfo
    timings: Timings
    started: float
    calls: list[LlmCall] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    answer: Answer  # the extractive answer, its timings including the LLM stages
    generation: GenerationInfo
    calls: list[LlmCall]


async def _inline(fn: Callable[[], _T]) -> _T:
    return fn()


class GenerationService:
    def __init__(self, settings: Settings) -> None:
        assert settings.generation_base_url and settings.generation_model  # Settings validated both
        self.settings = settings
        self.prompt = PromptTemplate.from_settings(settings)
        self.breaker = CircuitBreaker(
            settings.generation_breaker_failures, settings.generation_breaker_reset_seconds
        )
        key = settings.generation_api_key
        self.client = ChatClient(
            settings.generation_base_url,
            settings.generation_model,
            api_key=key.get_secret_value() if key else None,
            timeout=settings.generation_timeout_seconds,
            retries=settings.generation_retries,
            backoff=settings.generation_backoff_seconds,
            breaker=self.breaker,
            max_connections=settings.max_concurrency,
        )
        self._schema: tuple[str, FilterSchema] | None = None

    @property
    def aids_retrieval(self) -> bool:
        """Does the LLM take part in retrieval (so even an extractive answer goes through this layer)?"""
        return self.settings.generation_expansions > 0 or self.settings.generation_self_query

    async def aclose(self) -> None:
        await self.client.aclose()

    # ---- retrieval ---------------------------------------------------------------------------------------

    async def prepare(
        self,
        pipeline: Pipeline,
        question: str,
        params: RetrievalParams,
        filters: dict[str, Any] | None,
        mode: Mode,
        run: Run[Any] = _inline,
    ) -> Prepared:
        """Self-query and expansion (concurrently), then retrieval and the extractive answer via `run` (the
        API's admission pool; inline by default)."""
        started = time.perf_counter()
        timings = Timings()
        calls: list[LlmCall] = []
        pipeline.bundle.unit_mask(filters)  # a bad filter is a 422 before any LLM call is paid for
        proposed, paraphrases = await asyncio.gather(
            self._self_query(pipeline, question, filters, timings, calls),
            self._expand(question, timings, calls),
        )
        applied, added = merge_filters(filters, proposed)
        queries = [question, *paraphrases]

        def retrieve() -> tuple[Answer, bool]:
            ranking = expanded_ranking(pipeline, queries, params, applied, timings)
            answer = pipeline.compose(question, ranking, params, applied, timings)
            if added and not answer.evidence:
                # The LLM's filter left nothing: it misread the question, the collection is not empty.
                ranking = expanded_ranking(pipeline, queries, params, filters, timings)
                return pipeline.compose(question, ranking, params, filters, timings), False
            return answer, True

        answer, kept = await run(retrieve)
        info = GenerationInfo(
            mode=mode, expansions=paraphrases, self_query_filters=added if added and kept else None
        )
        return Prepared(question.strip(), answer, info, timings, started, calls)

    async def _expand(self, question: str, timings: Timings, calls: list[LlmCall]) -> list[str]:
        n = self.settings.generation_expansions
        if n <= 0:
            return []
        with timings.stage("expand"):
            reply = await self._call(
                "expand",
                calls,
                expansion_messages(question, n),
                max_tokens=min(self.settings.generation_max_tokens, _TOKENS_PER_PARAPHRASE * n),
            )
        return parse_paraphrases(reply, question, n) if reply is not None else []

    async def _self_query(
        self,
        pipeline: Pipeline,
        question: str,
        filters: dict[str, Any] | None,
        timings: Timings,
        calls: list[LlmCall],
    ) -> dict[str, list[str]]:
        if not self.settings.generation_self_query:
            return {}
        schema = self._filter_schema(pipeline)
        if not schema.fields or (filters and set(schema.fields) <= set(filters)):
            return {}  # nothing left for the LLM to choose: no call
        with timings.stage("self_query"):
            reply = await self._call(
                "self_query",
                calls,
                self_query_messages(question, schema),
                max_tokens=_SELF_QUERY_TOKENS,
                response_format=schema.response_format(),
            )
        return parse_filter(reply, schema) if reply is not None else {}

    def _filter_schema(self, pipeline: Pipeline) -> FilterSchema:
        # One bundle at a time (hot reload swaps it): keyed by corpus, so the old bundle is not kept alive.
        if self._schema is None or self._schema[0] != pipeline.corpus_id:
            self._schema = (pipeline.corpus_id, FilterSchema.of(pipeline.bundle))
        return self._schema[1]

    async def _call(
        self, stage: Stage, calls: list[LlmCall], messages: list[dict[str, str]], **options: Any
    ) -> str | None:
        """A retrieval aid's completion, or None: a failed aid only means retrieval without it."""
        started = time.perf_counter()
        try:
            completion = await self.client.complete(
                messages, temperature=self.settings.generation_temperature, **options
            )
        except GenerationError as exc:
            log.warning("%s failed: %s: %s", stage, exc.reason, exc)
            calls.append(LlmCall(stage, time.perf_counter() - started, failure=exc.reason))
            return None
        calls.append(LlmCall(stage, completion.seconds, completion.usage))
        return completion.text

    # ---- the answer --------------------------------------------------------------------------------------

    def _messages(self, prepared: Prepared) -> list[dict[str, str]] | None:
        if prepared.info.mode != "generative":
            return None
        if prepared.answer.abstained:  # no evidence worth grounding an answer on: the LLM is not asked
            prepared.info.fallback_reason = "abstained"
            prepared.info.fallback_detail = prepared.answer.reason
            return None
        return self.prompt.messages(prepared.question, prepared.answer.evidence)

    def _options(self) -> dict[str, Any]:
        return {
            "max_tokens": self.settings.generation_max_tokens,
            "temperature": self.settings.generation_temperature,
        }

    async def answer(self, prepared: Prepared) -> Outcome:
        """The generated answer (generative mode), checked; the fallback reason if it cannot be used."""
        messages = self._messages(prepared)
        if messages is not None:
            with prepared.timings.stage("generate"):
                started = time.perf_counter()
                try:
                    completion = await self.client.complete(messages, **self._options())
                except GenerationError as exc:
                    self._failed(prepared, exc, time.perf_counter() - started)
                else:
                    prepared.calls.append(LlmCall("generate", completion.seconds, completion.usage))
                    self._judge(
                        prepared, completion.text, completion.model, completion.usage, completion.seconds
                    )
        return self.finish(prepared)

    async def stream(self, prepared: Prepared) -> AsyncGenerator[str, None]:
        """The generated answer's deltas as they arrive; then `finish(prepared)` has the checked result.
        Text already streamed may still fail the check: the final result says so (and why)."""
        messages = self._messages(prepared)
        if messages is None:
            return
        with prepared.timings.stage("generate"):
            started = time.perf_counter()
            chat = self.client.stream(messages, **self._options())
            try:
                async for delta in chat:
                    yield delta
            except GenerationError as exc:
                self._failed(prepared, exc, time.perf_counter() - started)
                return
            finally:
                await chat.aclose()
            prepared.calls.append(LlmCall("generate", chat.seconds, chat.usage))
            self._judge(prepared, chat.text, chat.model, chat.usage, chat.seconds)

    def _failed(self, prepared: Prepared, exc: GenerationError, seconds: float) -> None:
        log.warning("generation failed: %s: %s", exc.reason, exc)
        prepared.calls.append(LlmCall("generate", seconds, failure=exc.reason))
        info = prepared.info
        info.fallback_reason, info.fallback_detail = cast(FallbackReason, exc.reason), str(exc)
        info.model = self.settings.generation_model

    def _judge(
        self, prepared: Prepared, text: str, model: str | None, usage: Usage | None, seconds: float
    ) -> None:
        evidence = prepared.answer.evidence
        result = check_answer(text, [e.text for e in evidence])
        info = prepared.info
        info.model = model or self.settings.generation_model
        info.usage = usage
        info.latency_ms = round(seconds * 1000.0, 3)
        if result.ok:
            info.answer = text.strip()
            info.citations = [
                Citation(n=n, sentence_id=evidence[n - 1].sentence_id, doc_id=evidence[n - 1].doc_id)
                for n in result.cited
            ]
        else:
            info.fallback_reason, info.fallback_detail = result.reason, result.detail

    def finish(self, prepared: Prepared) -> Outcome:
        timings = prepared.timings.ms
        timings["total"] = round((time.perf_counter() - prepared.started) * 1000.0, 3)
        prepared.answer.timings_ms = dict(timings)
        return Outcome(prepared.answer, prepared.info, prepared.calls)
