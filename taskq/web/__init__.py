"""The web dashboard (`taskq dashboard`, extra taskq-redis[dashboard]): server-rendered pages over the
read model (views.py) and the same actions as the CLI. Pages refresh their content
from the server every 2 s (one request per open page); every state change is a POST carrying
the CSRF token; `read_only` hides and refuses them. It never shows a Redis URL or password.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from taskq import views
from taskq.app import TaskQ
from taskq.errors import BrokerError, JobNotFound, TaskqError
from taskq.web.auth import Guard
from taskq.web.charts import bars

#: rows per page of a queue's jobs
PAGE = 50
ACTIONS = ("cancel", "abort", "replay", "purge")
#: what base.html puts around the part of a page that live refreshes replace
LIVE_BEGIN, LIVE_END = "<main data-live>", "</main>"


def create_app(app: TaskQ, *, token: str | None = None, read_only: bool = False) -> Starlette:
    """The dashboard of `app` as an ASGI application."""
    guard = Guard(token)
    env = Environment(loader=PackageLoader("taskq.web", "templates"), autoescape=select_autoescape(default=True))
    by = f"dashboard on {socket.gethostname()}"

    def page(request: Request, template_name: str, status: int = 200, **ctx: Any) -> Response:
        ctx.update(read_only=read_only, csrf=guard.csrf, done=request.query_params.get("done"),
                   path=request.url.path, app_name=app.name)
        html = env.get_template(template_name).render(ctx)
        if request.headers.get("x-partial") == "1":  # live refresh: what <main> holds, only
            html = html.split(LIVE_BEGIN, 1)[1].rsplit(LIVE_END, 1)[0]
        return HTMLResponse(html, status_code=status)

    def failure(request: Request, exc: Exception) -> Response:
        if isinstance(exc, BrokerError):
            return page(request, "error.html", 503, message=f"Redis unreachable: {exc}")
        return page(request, "error.html", 404 if isinstance(exc, JobNotFound) else 400, message=str(exc))

    async def overview(request: Request) -> Response:
        try:
            data = views.snapshot(app)
            minutes = views.per_minute(app, list(data["queues"]))
        except TaskqError as exc:
            return failure(request, exc)
        return page(request, "overview.html", data=data, chart=bars(minutes["succeeded"], minutes["failed"]),
                    minutes=minutes, done_total=sum(minutes["succeeded"]), failed_total=sum(minutes["failed"]))

    async def queue_page(request: Request) -> Response:
        name = request.path_params["name"]
        state = request.query_params.get("state", "ready")
        number = max(1, int(request.query_params.get("page", "1") or 1)) if request.query_params.get(
            "page", "1").isdigit() else 1
        try:
            rows = views.queue_jobs(app, name, state, (number - 1) * PAGE, PAGE)
            depths = app.broker.depths(name).as_dict()
            paused = name in app.broker.paused([name])
        except TaskqError as exc:
            return failure(request, exc)
        return page(request, "queue.html", name=name, state=state, rows=rows, number=number, depths=depths,
                    states=views.STATES, paused=paused, more=len(rows) == PAGE)

    async def job_page(request: Request) -> Response:
        try:
            record = views.find(app, request.path_params["job_id"], request.query_params.get("queue") or None)
            view = views.describe(app, record)
        except TaskqError as exc:
            return failure(request, exc)
        return page(request, "job.html", job=view, actions=_actions(view["status"]))

    async def dead_page(request: Request) -> Response:
        try:
            rows = views.dead_jobs(app, app.known_queues(), 100)
        except TaskqError as exc:
            return failure(request, exc)
        return page(request, "dead.html", rows=[r.as_dict() for r in rows])

    async def workers_page(request: Request) -> Response:
        try:
            data = views.snapshot(app)
        except TaskqError as exc:
            return failure(request, exc)
        return page(request, "workers.html", data=data)

    async def search(request: Request) -> Response:
        job_id = (request.query_params.get("id") or "").strip()
        return RedirectResponse(f"/jobs/{quote(job_id, safe='')}" if job_id else "/", status_code=303)

    async def act(request: Request, do: Any, back: str) -> Response:
        """One POSTed action: refused when read-only or without the CSRF token; then back to the page."""
        if read_only:
            return page(request, "error.html", 403, message="this dashboard is read-only")
        form = await request.form()
        if not guard.csrf_ok(str(form.get("csrf") or "") or None):
            return page(request, "error.html", 403, message="missing or wrong CSRF token: reload the page")
        try:
            said = do(form)
        except TaskqError as exc:
            return failure(request, exc)
        return RedirectResponse(f"{back}?{urlencode({'done': said})}", status_code=303)

    async def job_action(request: Request) -> Response:
        job_id, action = request.path_params["job_id"], request.path_params["action"]

        def do(form: Any) -> str:
            record = views.find(app, job_id, str(form.get("queue") or "") or None)
            if action not in ACTIONS:
                raise TaskqError(f"unknown action {action!r}")
            if action in ("replay", "purge"):
                done = views.replay(app, record) if action == "replay" else views.purge(app, record) > 0
            else:
                handle = app.job(record.id, record.queue)
                done = handle.abort(by) if action == "abort" else handle.cancel()
            return f"{action} {job_id}: {'done' if done else 'nothing to do (it had moved on)'}"

        return await act(request, do, f"/jobs/{quote(job_id, safe='')}")

    async def queue_action(request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]

        def do(form: Any) -> str:
            if action not in ("pause", "resume"):
                raise TaskqError(f"unknown action {action!r}")
            changed = views.pause(app, name, action == "pause")
            return f"{action} {name}: {'done' if changed else 'it was already so'}"

        return await act(request, do, f"/queues/{quote(name, safe='')}")

    async def dead_action(request: Request) -> Response:
        action = request.path_params["action"]

        def do(form: Any) -> str:
            queues = views.check_queue(app, str(form.get("queue") or "") or None)
            if action == "replay":
                count = 0
                for q in queues:
                    _, replays = views.replay_many(app, q, lambda job_id, why: None)
                    count += sum(replays)
                return f"replayed {count} dead job(s)"
            if action == "purge":
                return f"purged {sum(views.purge_all(app, q) for q in queues)} dead job(s)"
            raise TaskqError(f"unknown action {action!r}")

        return await act(request, do, "/dead")

    routes = [
        Route("/", overview), Route("/queues/{name}", queue_page), Route("/jobs/{job_id}", job_page),
        Route("/dead", dead_page), Route("/workers", workers_page), Route("/search", search),
        Route("/jobs/{job_id}/{action}", job_action, methods=["POST"]),
        Route("/queues/{name}/{action}", queue_action, methods=["POST"]),
        Route("/dead/{action}", dead_action, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("taskq.web", "static")]), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])


def _actions(status: str | None) -> list[str]:
    """What can be done to a job in this status."""
    if status in ("queued", "scheduled", "failed", "reserved", "waiting"):
        return ["cancel"]
    if status == "running":
        return ["abort"]
    if status == "dead":
        return ["replay", "purge"]
    return []
