"""BentoML service: scores raw records of any dataset with its current champions.

Serve from the repository root::

    bentoml serve bentos.service:IDSService --port 3000

It binds 127.0.0.1 unless ``--host`` says otherwise. Endpoints: ``POST /score``,
``POST /reload``, ``POST /status``, ``GET /ids/champions``, BentoML's ``/livez``,
``/healthz``, ``/readyz``, ``/metrics`` and the OpenAPI page (``/``,
``/docs.json``). With ``$IDS_API_TOKEN`` set, every endpoint but the probes
needs ``Authorization: Bearer <token>``.

No adaptive batching: a request already carries a list of records and is
scored as one vectorised batch, and merging requests would only add queueing
time to single-record latency while the log write stays per request anyway.
"""

from __future__ import annotations

import gc
import hmac
import json
import logging
import os
from typing import Any

import bentoml
import orjson
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ids import settings
from ids.serving import Scorer, ScoringError

logger = logging.getLogger(__name__)

TOKEN_ENV = "IDS_API_TOKEN"
MAX_BYTES_ENV = "IDS_MAX_REQUEST_BYTES"
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
RELOAD_ENV = "IDS_RELOAD_INTERVAL_S"
WORKERS_ENV = "IDS_SERVE_WORKERS"
OPEN_PATHS = {"/livez", "/healthz", "/readyz"}

_scorer: Scorer | None = None


def _default_workers() -> int:
    """``$IDS_SERVE_WORKERS``, else one worker per CPU core, at most 4.

    Measured on two cores: two workers score 1.6x the records of one and halve
    single-record latency; every worker holds its own copy of the champions.
    """
    value = os.environ.get(WORKERS_ENV)
    return int(value) if value else max(1, min(os.cpu_count() or 1, 4))


class RequestGuard:
    """ASGI middleware: the optional bearer token and the request size limit."""

    def __init__(self, app, **_: Any):
        self.app = app
        self.token = os.environ.get(TOKEN_ENV) or None
        self.max_bytes = int(os.environ.get(MAX_BYTES_ENV, DEFAULT_MAX_BYTES))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v for k, v in scope["headers"]}
        if self.token and scope["path"] not in OPEN_PATHS:
            sent = headers.get("authorization", b"").decode("latin-1")
            if not hmac.compare_digest(sent, f"Bearer {self.token}"):
                return await _reject(
                    send,
                    401,
                    "missing or wrong API token; send 'Authorization: Bearer <token>' "
                    f"with the token the server was started with (${TOKEN_ENV})",
                )
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _reject(
                send,
                413,
                f"request body of {int(length)} bytes is over the limit of "
                f"{self.max_bytes} bytes; send fewer records per request "
                f"(limit: ${MAX_BYTES_ENV})",
            )
        if length is None and scope.get("method") == "POST":
            body = await _read_limited(receive, self.max_bytes)
            if body is None:
                return await _reject(
                    send, 413, f"request body over {self.max_bytes} bytes"
                )
            receive = _replay(body, receive)
        return await self.app(scope, receive, send)


async def _read_limited(receive, max_bytes: int) -> bytes | None:
    """A chunked body read whole, or None once it passes ``max_bytes``."""
    chunks, total, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        total += len(chunks[-1])
        if total > max_bytes:
            return None
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def _reject(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _champions_view(_: Request) -> JSONResponse:
    if _scorer is None:
        return JSONResponse({"ready": False, "champions": {}}, status_code=503)
    return JSONResponse({"ready": True, **_scorer.status()})


_status_app = Starlette(routes=[Route("/champions", _champions_view)])


class Prediction(BaseModel):
    """One scored record; a field is null when that task has no champion."""

    is_attack: bool | None = Field(description="binary champion: attack or not")
    attack_probability: float | None = Field(description="binary champion")
    attack_type: str | None = Field(description="multi-class champion: the class")
    probabilities: dict[str, float] | None = Field(
        description="multi-class champion: probability of each of the ten classes"
    )
    disagree: bool | None = Field(
        description="the two champions disagree on attack or not"
    )


class ScoreResponse(BaseModel):
    """What ``/score`` answers: the champions used and one prediction per record."""

    dataset: str
    count: int
    models: dict[str, str | None] = Field(
        description="registry tag of the binary and the multiclass champion"
    )
    predictions: list[Prediction]


def _json_response(body: dict, status: int = 200) -> Response:
    # Encoded here rather than by BentoML, which validates the dict against
    # the declared model and rebuilds its JSON schema on every response:
    # 1,000 records cost ~10 ms that way and ~1 ms with orjson.
    content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, status_code=status, media_type="application/json")


@bentoml.asgi_app(_status_app, path="/ids")
@bentoml.service(
    name="ids",
    workers=_default_workers(),
    threads=1,
    http={"host": "127.0.0.1", "port": 3000},
    traffic={"timeout": 60},
    # One log line per request costs more than scoring a single record; the
    # inference log already keeps every scored record. IDS_ACCESS_LOG=1 turns
    # it back on.
    logging={"access": {"enabled": os.environ.get("IDS_ACCESS_LOG") == "1"}},
    # Without a tracing exporter configured, a span per scoring request is
    # pure cost (~7% of a single-record request); IDS_TRACE_SCORING=1 traces
    # /score as well.
    tracing={
        "excluded_urls": None
        if os.environ.get("IDS_TRACE_SCORING") == "1"
        else "/score"
    },
)
class IDSService:
    """Champion scoring for every ToN-IoT dataset, with the inference log."""

    def __init__(self) -> None:
        global _scorer
        for key, value in settings.DEFAULT_ENV.items():
            os.environ.setdefault(key, value)
        # One thread per model call: the workers are the parallelism. A random
        # forest with n_jobs=-1 took 25 ms for one record here, 7.9 ms with 1.
        self.scorer = Scorer(
            log=os.environ.get("IDS_INFERENCE_LOG_OFF") != "1", model_jobs=1
        )
        self.scorer.watch(float(os.environ.get(RELOAD_ENV, "2")))
        _scorer = self.scorer
        # What is loaded now lives as long as the worker: out of the cyclic
        # collector's reach, a full collection no longer walks it (~130 ms
        # here with TensorFlow and the champions loaded).
        gc.collect()
        gc.freeze()
        logger.info("serving champions %s", self.scorer.champions.tags())

    def __is_ready__(self) -> bool:
        return self.scorer is not None

    @bentoml.api(route="/score")
    async def score(self, dataset: str, records: list[dict[str, Any]]) -> ScoreResponse:
        """Score raw records of ``dataset`` (as in the ToN-IoT files).

        Runs on the event loop: scoring is CPU-bound and serial per worker
        anyway, and skipping the thread hop saves a millisecond per request.

        Returns ``count``, the champion ``models`` used (binary, multiclass) and
        one prediction per record: ``is_attack``, ``attack_probability``,
        ``attack_type``, ``probabilities`` over the ten classes and
        ``disagree`` (the two champions disagree on attack or not).
        """
        try:
            scored = self.scorer.score(dataset, records)
        except ScoringError as exc:
            return _json_response({"error": str(exc)}, exc.status)
        return _json_response({"dataset": dataset, **scored})

    @bentoml.api(route="/reload")
    def reload(self) -> dict[str, Any]:
        """Load the champion pointers again now (this worker); returns the status."""
        swapped = self.scorer.reload(force=True)
        return {"reloaded": swapped, **self.scorer.status()}

    @bentoml.api(route="/status")
    def status(self) -> dict[str, Any]:
        """Champions loaded per dataset and task, pointer version, load errors."""
        return self.scorer.status()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.scorer.stop()


IDSService.add_asgi_middleware(RequestGuard)
