"""The web dashboard (`taskq dashboard`, extra taskq-redis[dashboard]): server-rendered pages over the
read model (views.py) and the same actions as the CLI (web/actions.py), and a JSON API under
/api/v1 (web/api.py). Pages follow the job events the API streams (server-sent events) and
reload their content when a job moves, at most once a second (static/live.js); every state
change is a POST carrying the CSRF token; `read_only` hides and refuses them. It never shows a
Redis URL or password.

Pages are plain functions: Starlette runs them on its thread pool, so the blocking Redis calls of
the read model never hold the event loop; an action's form is read on the loop, its work on the pool.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from taskq import job_views, partition_views, server_views, views
from taskq.app import TaskQ
from taskq.dead_views import DeadFilter, dead_page
from taskq.errors import BrokerError, JobNotFound, TaskqError
from taskq.web import actions
from taskq.web.api import Api, dead_filter
from taskq.web.auth import Guard
from taskq.web.charts import RANGES, bars, columns

#: rows per page of a queue's jobs
PAGE = 50
#: what can be done to a job from its page
ACTIONS = ("cancel", "abort", "replay", "purge", "run-now")
#: partitions a queue's page lists (the largest backlog first)
PARTITIONS_SHOWN = 50
#: what base.html puts around the part of a page that live refreshes replace
LIVE_BEGIN, LIVE_END = "<main data-live>", "</main>"


def create_app(app: TaskQ, *, token: str | None = None, read_only: bool = False) -> Starlette:
    """The dashboard of `app` as an ASGI application."""
    guard = Guard(token)
    d = Dashboard(app, guard, read_only)
    routes = [
        Route("/", d.overview), Route("/queues/{name}", d.queue_page), Route("/jobs/{job_id}", d.job_page),
        Route("/dead", d.dead_page), Route("/workers", d.workers_page), Route("/search", d.search),
        Route("/jobs/{job_id}/{action}", d.job_action, methods=["POST"]),
        Route("/queues/{name}/{action}", d.queue_action, methods=["POST"]),
        Route("/queues/{name}/partitions/{action}", d.partition_action, methods=["POST"]),
        Route("/dead/{action}", d.dead_action, methods=["POST"]),
        Route("/schedules/{action}", d.schedule_action, methods=["POST"]),
        Mount("/api/v1", routes=Api(app, guard, read_only, d.by).routes()),
        Mount("/static", StaticFiles(packages=[("taskq.web", "static")]), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])


class Dashboard:
    """The pages and actions of one app's dashboard."""

    def __init__(self, app: TaskQ, guard: Guard, read_only: bool) -> None:
        self.app = app
        self.guard = guard
        self.read_only = read_only
        self.env = Environment(loader=PackageLoader("taskq.web", "templates"),
                               autoescape=select_autoescape(default=True))
        self.env.filters["pretty"] = pretty
        #: who asks, when an action aborts a job
        self.by = f"dashboard on {socket.gethostname()}"

    def page(self, request: Request, template_name: str, status: int = 200, **ctx: Any) -> Response:
        ctx.update(read_only=self.read_only, csrf=self.guard.csrf, done=request.query_params.get("done"),
                   path=request.url.path, app_name=self.app.name)
        html = self.env.get_template(template_name).render(ctx)
        if request.headers.get("x-partial") == "1":  # live refresh: what <main> holds, only
            html = html.split(LIVE_BEGIN, 1)[1].rsplit(LIVE_END, 1)[0]
        return HTMLResponse(html, status_code=status)

    def failure(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, BrokerError):
            return self.page(request, "error.html", 503, message=f"Redis unreachable: {exc}")
        return self.page(request, "error.html", 404 if isinstance(exc, JobNotFound) else 400, message=str(exc))

    def render(self, request: Request, template_name: str, read: Callable[[], dict[str, Any]]) -> Response:
        """A page from what `read` gets of the read model, or the error page if it fails."""
        try:
            ctx = read()
        except TaskqError as exc:
            return self.failure(request, exc)
        return self.page(request, template_name, **ctx)

    # -- pages (plain functions: Starlette runs them on its thread pool) ---------------------

    def overview(self, request: Request) -> Response:
        def read() -> dict[str, Any]:
            data = views.snapshot(self.app)
            minutes = views.per_minute(self.app, list(data["queues"]))
            return {"data": data, "chart": bars(minutes["succeeded"], minutes["failed"]), "minutes": minutes,
                    "redis": server_views.redis_facts(self.app),
                    "done_total": sum(minutes["succeeded"]), "failed_total": sum(minutes["failed"])}

        return self.render(request, "overview.html", read)

    def queue_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        state = request.query_params.get("state", "ready")
        asked = request.query_params.get("page", "1")
        number = max(1, int(asked)) if asked.isdigit() else 1
        shown = request.query_params.get("range", "1h")
        shown = shown if shown in RANGES else "1h"

        def read() -> dict[str, Any]:
            rows = views.queue_jobs(self.app, name, state, (number - 1) * PAGE, PAGE)
            depths = views.queue_state(self.app, name)
            paused = depths.pop("paused")
            return {"name": name, "state": state, "rows": rows, "number": number, "depths": depths,
                    "states": views.STATES, "paused": paused, "more": len(rows) == PAGE,
                    "partitions": partition_views.partition_list(self.app, name, PARTITIONS_SHOWN),
                    "partitions_shown": PARTITIONS_SHOWN, "ranges": list(RANGES), "range": shown,
                    "history": history_charts(views.queue_history(self.app, name, *RANGES[shown]))}

        return self.render(request, "queue.html", read)

    def job_page(self, request: Request) -> Response:
        def read() -> dict[str, Any]:
            record = views.find(self.app, request.path_params["job_id"], request.query_params.get("queue") or None)
            view = views.describe(self.app, record)
            return {"job": view, "actions": _actions(view["status"]), "logs": job_views.log_lines(self.app, record)}

        return self.render(request, "job.html", read)

    def dead_page(self, request: Request) -> Response:
        """Dead jobs, newest first, a page at a time; filtered by queue, task and error text."""
        f = dead_filter(request.query_params)
        asked = request.query_params.get("page", "1")
        number = max(1, int(asked)) if asked.isdigit() else 1

        def read() -> dict[str, Any]:
            params = f.as_params()
            page = dead_page(self.app, f, (number - 1) * PAGE, PAGE)
            return {"page": page, "filter": f, "params": params, "queues": self.app.known_queues(),
                    "prev": urlencode({**params, "page": number - 1}),
                    "next": urlencode({**params, "page": number + 1})}

        return self.render(request, "dead.html", read)

    def workers_page(self, request: Request) -> Response:
        return self.render(request, "workers.html", lambda: {"data": views.snapshot(self.app),
                                                             "workers": server_views.workers(self.app)})

    def search(self, request: Request) -> Response:
        job_id = (request.query_params.get("id") or "").strip()
        return RedirectResponse(f"/jobs/{quote(job_id, safe='')}" if job_id else "/", status_code=303)

    # -- actions ------------------------------------------------------------

    async def act(self, request: Request, do: Callable[[FormData], str], back: str) -> Response:
        """One POSTed action: refused when read-only or without the CSRF token; its work on the
        thread pool; then back to the page, saying what it did."""
        if self.read_only:
            return self.page(request, "error.html", 403, message="this dashboard is read-only")
        form = await request.form()
        if not self.guard.csrf_ok(str(form.get("csrf") or "") or None):
            return self.page(request, "error.html", 403, message="missing or wrong CSRF token: reload the page")
        try:
            said = await run_in_threadpool(do, form)
        except TaskqError as exc:
            return self.failure(request, exc)
        return RedirectResponse(f"{back}?{urlencode({'done': said})}", status_code=303)

    async def job_action(self, request: Request) -> Response:
        job_id, action = request.path_params["job_id"], request.path_params["action"]

        def do(form: FormData) -> str:
            record = views.find(self.app, job_id, str(form.get("queue") or "") or None)
            if action not in ACTIONS:
                raise TaskqError(f"unknown action {action!r}")
            if action in ("replay", "purge"):
                done = views.replay(self.app, record) if action == "replay" else views.purge(self.app, record) > 0
            elif action == "run-now":
                done = self.app.job(record.id, record.queue).run_now()
            else:
                handle = self.app.job(record.id, record.queue)
                done = handle.abort(self.by) if action == "abort" else handle.cancel()
            return f"{action} {job_id}: {'done' if done else 'nothing to do (it had moved on)'}"

        return await self.act(request, do, f"/jobs/{quote(job_id, safe='')}")

    async def queue_action(self, request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        return await self.act(request, lambda form: actions.queue(self.app, name, action).message,
                              f"/queues/{quote(name, safe='')}")

    async def partition_action(self, request: Request) -> Response:
        """Pause, resume or end the backoff of the partition the form names (any text: not in the path)."""
        name, action = request.path_params["name"], request.path_params["action"]
        return await self.act(request, lambda form: actions.partition(
            self.app, name, action, str(form.get("partition") or "")).message, f"/queues/{quote(name, safe='')}")

    async def schedule_action(self, request: Request) -> Response:
        """Pause, resume, run now or remove the schedule the form names (ids may hold any text)."""
        action = request.path_params["action"]
        return await self.act(request, lambda form: actions.schedule(
            self.app, str(form.get("schedule") or ""), action).message, "/workers")

    async def dead_action(self, request: Request) -> Response:
        """Replay or purge the dead jobs ticked (`id` fields), or every one the filter matches:
        that shows a confirmation page first, whose form adds confirm=yes."""
        action = request.path_params["action"]
        form = await request.form()  # Starlette keeps it: act() reads the same one
        f, ids = dead_filter(form), [str(i) for i in form.getlist("id")] or None
        if ids is None and form.get("confirm") != actions.CONFIRM and action in actions.DEAD_ACTIONS \
                and not self.read_only and self.guard.csrf_ok(str(form.get("csrf") or "") or None):
            return await run_in_threadpool(self.dead_confirm, request, action, f)

        def do(form: FormData) -> str:
            return actions.dead(self.app, action, f, ids, str(form.get("confirm") or "") or None).message

        return await self.act(request, do, "/dead")

    def dead_confirm(self, request: Request, action: str, f: DeadFilter) -> Response:
        params = f.as_params()
        return self.render(request, "dead_confirm.html", lambda: {
            "action": action, "filter": f, "params": params, "back": urlencode(params),
            "total": dead_page(self.app, f, 0, 1)["total"]})

def pretty(value: Any) -> str:
    """A value as indented JSON (repr for what JSON cannot show), for the job page's <pre>; the
    template escapes it."""
    return json.dumps(value, indent=2, default=repr, ensure_ascii=False)


def history_charts(h: dict[str, Any]) -> list[str]:
    """The queue page's history: throughput, failures, runtime and wait, one chart each."""
    return [columns(h[key], label, unit, h["start"], h["end"], kind=kind) for key, label, unit, kind in (
        ("succeeded", "succeeded", "jobs", "good"), ("failed", "failed attempts and dead", "jobs", "bad"),
        ("runtime_ms_avg", "runtime, average", "ms", "good"),
        ("wait_ms_avg", "wait before start, average", "ms", "good"))]


_actions = actions.allowed
