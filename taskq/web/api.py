"""The dashboard's JSON API under /api/v1/ (described by /api/v1/openapi.json, web/openapi.py) and
its server-sent events (/api/v1/events): the same read model as the pages, the same actions
(web/actions.py) and the same guard (web/auth.py: the token, by bearer header or session cookie).

A POST authenticated by `Authorization: Bearer` needs no CSRF token (a browser never adds that
header by itself); any other POST (a cookie session, or loopback without a token) sends the token
of GET /api/v1/session as `X-CSRF-Token`. Read-only mode refuses every POST with 403.

Reads are plain functions (Starlette runs them on its thread pool, as it does the pages); the
POSTs read their body on the loop and do their work on the pool; the event stream is the one
coroutine, reading the queues' streams on the loop's asyncio client (app.events_async).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from taskq import partition_views, server_views, views
from taskq.app import TaskQ
from taskq.dead_views import MAX_PAGE, DeadFilter, dead_page
from taskq.errors import BrokerError, JobNotFound, TaskqError
from taskq.stats_views import step_for
from taskq.web import actions
from taskq.web.auth import Guard
from taskq.web.openapi import document

#: seconds an idle event stream waits before a keep-alive comment (so proxies keep it open)
KEEPALIVE = 15.0
#: rows per page when the caller does not say
PAGE = 50


def _plain(value: Any) -> Any:
    """JSON for the values msgpack carries that json does not: instants as ISO 8601, sets as lists,
    bytes as text (what the pages show of them), anything else as its str()."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, default=_plain).encode()


def error(status: int, message: str) -> Response:
    return JSON({"error": message}, status_code=status)


def _failure(exc: TaskqError) -> Response:
    if isinstance(exc, actions.NeedsConfirm):
        return error(409, str(exc))
    if isinstance(exc, BrokerError):
        return error(503, f"Redis unreachable: {exc}")
    return error(404 if isinstance(exc, JobNotFound) else 400, str(exc))


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise TaskqError(f"{name} must be a whole number in {low}..{high}, got {raw!r}")
    return int(raw)


def dead_filter(params: Any) -> DeadFilter:
    """The dead-letter filter of query parameters or a form: queue, task, q (error text)."""
    return DeadFilter(str(params.get("queue") or "") or None, str(params.get("task") or "").strip(),
                      str(params.get("q") or "").strip())


class Api:
    """The API's handlers over one app."""

    def __init__(self, app: TaskQ, guard: Guard, read_only: bool, by: str) -> None:
        self.app, self.guard, self.read_only, self.by = app, guard, read_only, by

    def routes(self) -> list[BaseRoute]:
        """The routes, relative to /api/v1."""
        return [
            Route("/openapi.json", self.openapi), Route("/session", self.session), Route("/queues", self.queues),
            Route("/queues/{name}/jobs", self.queue_jobs), Route("/queues/{name}/partitions", self.partitions),
            Route("/jobs/{job_id}", self.job), Route("/dead", self.dead), Route("/workers", self.workers),
            Route("/schedules", self.schedules), Route("/redis", self.redis), Route("/events", self.events),
            Route("/stats", self.stats),
            Route("/jobs/{job_id}/{action}", self.job_action, methods=["POST"]),
            Route("/queues/{name}/partitions/{action}", self.partition_action, methods=["POST"]),
            Route("/queues/{name}/{action}", self.queue_action, methods=["POST"]),
            Route("/dead/{action}", self.dead_action, methods=["POST"]),
            Route("/schedules/{action}", self.schedule_action, methods=["POST"]),
        ]

    # -- reads (plain functions: Starlette runs them on its thread pool) ----------------

    def read(self, get: Callable[[], Any]) -> Response:
        try:
            return JSON(get())
        except TaskqError as exc:
            return _failure(exc)

    def openapi(self, request: Request) -> Response:
        return JSON(document())

    def session(self, request: Request) -> Response:
        return JSON({"csrf": self.guard.csrf, "read_only": self.read_only})

    def queues(self, request: Request) -> Response:
        return self.read(lambda: {"queues": views.queue_list(self.app)})

    def queue_jobs(self, request: Request) -> Response:
        name = request.path_params["name"]

        def get() -> dict[str, Any]:
            state = request.query_params.get("state", "ready")
            offset, limit = _int(request, "offset", 0, 0, 10**9), _int(request, "limit", PAGE, 1, MAX_PAGE)
            rows = views.queue_jobs(self.app, name, state, offset, limit)
            return {"queue": name, "state": state, "offset": offset, "limit": limit, "more": len(rows) == limit,
                    "jobs": rows}

        return self.read(get)

    def partitions(self, request: Request) -> Response:
        name = request.path_params["name"]
        return self.read(lambda: {"queue": name, "partitions": partition_views.partition_list(self.app, name)})

    def job(self, request: Request) -> Response:
        def get() -> dict[str, Any]:
            record = views.find(self.app, request.path_params["job_id"], request.query_params.get("queue") or None)
            view = views.describe(self.app, record)
            logs = [{"at": line.at.isoformat(), "level": line.level, "text": line.text}
                    for line in self.app.job(record.id, record.queue).logs()]
            return {**view, "actions": job_actions(view["status"]), "logs": logs}

        return self.read(get)

    def dead(self, request: Request) -> Response:
        return self.read(lambda: dead_page(self.app, dead_filter(request.query_params),
                                           _int(request, "offset", 0, 0, 10**9),
                                           _int(request, "limit", PAGE, 1, MAX_PAGE)))

    def workers(self, request: Request) -> Response:
        return self.read(lambda: {"workers": server_views.workers(self.app)})

    def schedules(self, request: Request) -> Response:
        return self.read(lambda: {"schedules": [s.as_view() for s in self.app.schedules.list()]})

    def redis(self, request: Request) -> Response:
        return self.read(lambda: server_views.redis_facts(self.app))

    def stats(self, request: Request) -> Response:
        queue, task = request.query_params.get("queue") or None, request.query_params.get("task") or None
        since, step = _int(request, "since", 3600, 60, 8 * 86_400), _int(request, "step", 60, 60, 86_400)

        def get() -> dict[str, Any]:
            if queue is not None:
                views.check_queue(self.app, queue)  # a queue nobody used: 400, as elsewhere
            points = self.app.stats(queue=queue, task=task, since=since, step=step)
            return {"queue": queue, "task": task, "since": since, "step": step_for(since, step),
                    "points": [p.as_dict() for p in points]}

        return self.read(get)

    # -- actions ------------------------------------------------------------

    async def act(self, request: Request, do: Callable[[dict[str, Any]], actions.Done]) -> Response:
        """One POST: refused when read-only, or without the CSRF token unless a bearer token
        authenticated it; its JSON body (an object, or nothing) handed to `do` on the pool."""
        if self.read_only:
            return error(403, "this dashboard is read-only")
        if not self.guard.bearer(request) and not self.guard.csrf_ok(request.headers.get("x-csrf-token")):
            return error(403, "missing or wrong X-CSRF-Token (GET /api/v1/session), or use a bearer token")
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return error(400, "the body must be JSON")
        if not isinstance(body, dict):
            return error(400, "the body must be a JSON object")
        try:
            done = await run_in_threadpool(do, body)
        except TaskqError as exc:
            return _failure(exc)
        return JSON({k: v for k, v in dataclasses.asdict(done).items() if v is not None})

    async def job_action(self, request: Request) -> Response:
        job_id, action = request.path_params["job_id"], request.path_params["action"]
        return await self.act(request, lambda b: actions.job(self.app, job_id, action, _text(b, "queue") or None,
                                                             self.by))

    async def queue_action(self, request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        return await self.act(request, lambda b: actions.queue(self.app, name, action))

    async def partition_action(self, request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        return await self.act(request, lambda b: actions.partition(self.app, name, action, _text(b, "partition")))

    async def schedule_action(self, request: Request) -> Response:
        action = request.path_params["action"]
        return await self.act(request, lambda b: actions.schedule(self.app, _text(b, "schedule"), action))

    async def dead_action(self, request: Request) -> Response:
        action = request.path_params["action"]

        def do(body: dict[str, Any]) -> actions.Done:
            ids = body.get("ids")
            if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
                raise TaskqError("ids must be a list of job ids")
            return actions.dead(self.app, action, dead_filter(body), ids, _text(body, "confirm") or None)

        return await self.act(request, do)

    # -- server-sent events ---------------------------------------------------

    async def events(self, request: Request) -> Response:
        """The queues' job transitions as `event: job` messages, each's data a JSON object as
        `taskq events --json` prints it; `id:` is its event id, so a reconnecting EventSource
        resumes after it (Last-Event-ID). ?queue= (repeatable) picks queues; ?timeout= ends the
        stream after that many idle seconds (for scripts and tests)."""
        try:
            queues = [q for name in request.query_params.getlist("queue")
                      for q in views.check_queue(self.app, name)] or self.app.known_queues()
            idle = float(request.query_params.get("timeout") or 0) or None
        except (TaskqError, ValueError) as exc:
            return error(400, str(exc))
        since = request.headers.get("last-event-id") or request.query_params.get("since") or "$"
        return StreamingResponse(self._stream(queues, since, idle), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _stream(self, queues: list[str], since: str, idle: float | None) -> AsyncIterator[str]:
        yield ": taskq events\n\n"  # sent at once: the browser's EventSource opens
        # "$" resolved once, to where each queue's stream is now: nothing is missed between two reads
        positions = dict(await self.app.broker.aio.event_heads(queues)) if since == "$" else \
            {q: since for q in queues}
        while True:
            got = False
            async for event in self.app.events_async(queues, since=positions, timeout=idle or KEEPALIVE):
                got = True
                positions[event.queue] = event.event_id or positions[event.queue]
                yield f"id: {event.event_id}\nevent: job\ndata: {json.dumps(views.event_view(event))}\n\n"
            if idle is not None and not got:
                return
            yield ": keep-alive\n\n"


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise TaskqError(f"{name} must be a string")
    return value or ""


#: what can be done to a job in this status (the job page's buttons)
job_actions = actions.allowed
