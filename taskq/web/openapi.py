"""The JSON API's OpenAPI 3.1 document (served at /api/v1/openapi.json): every path, and a JSON
Schema of every response body. tests/test_web_api.py validates each response it gets against it,
so a field added to a view without its schema here fails there."""

from __future__ import annotations

from typing import Any

from taskq._version import VERSION

_STR, _INT, _BOOL, _NUM = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "number"}
#: an ISO 8601 UTC instant, or null
_WHEN = {"type": ["string", "null"], "format": "date-time"}
#: any JSON value (arguments, results)
_ANY: dict[str, Any] = {}


def _null(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object with exactly these fields (the optional ones may be left out), no others."""
    return {"type": "object", "properties": {**required, **(optional or {})}, "required": list(required),
            "additionalProperties": False}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


_PROGRESS = _obj({"fraction": _NUM, "text": _null(_STR)})
SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _obj({"error": _STR}),
    "Queue": _obj({"queue": _STR, **{k: {"type": "integer", "minimum": 0} for k in (
        "ready", "scheduled", "reserved", "running", "dead", "ordered", "held", "partitions")}, "paused": _BOOL}),
    "Queues": _obj({"queues": _list("Queue")}),
    "JobRow": _obj({"id": _STR, "queue": _STR, "task": _null(_STR), "status": _null(_STR), "attempt": _null(_INT),
                    "enqueued": _WHEN, "finished": _WHEN, "reason": _null(_STR)},
                   {"due": _WHEN, "args": _null(_STR)}),
    "LogLine": _obj({"at": {"type": "string", "format": "date-time"}, "level": _STR, "text": _STR}),
    "JobPage": _obj({"queue": _STR, "state": {"enum": ["ready", "scheduled", "running", "dead", "succeeded",
                                                        "cancelled"]}, "offset": _INT,
                     "limit": _INT, "more": _BOOL, "jobs": _list("JobRow")}),
    "Job": _obj({"id": _STR, "queue": _STR, "status": _null(_STR), "task": _null(_STR), "attempt": _null(_INT),
                 "max_attempts": _null(_INT), "args": {"type": ["array", "null"]},
                 "kwargs": {"type": ["object", "null"]}, "enqueued": _WHEN, "started": _WHEN, "finished": _WHEN,
                 "reason": _null(_STR), "error": _null(_STR), "worker": _null(_STR), "deliveries": _INT,
                 "lost": _INT, "partition": _null(_STR), "due": _WHEN, "logs": _list("LogLine"),
                 "actions": {"type": "array", "items": {"enum": ["cancel", "abort", "replay", "purge", "run-now"]}}},
                {"priority": _INT, "message_error": _STR, "result": _ANY,
                 "progress": _obj({"fraction": _NUM, "text": _null(_STR), "at": _WHEN}),
                 "flow": _obj({"id": _STR, "step": _null(_INT), "steps": _null(_INT)})}),
    "DeadJob": _obj({"id": _STR, "queue": _STR, "task": _null(_STR), "attempts": _null(_INT), "dead_since": _WHEN,
                     "reason": _STR}),
    "DeadPage": _obj({"total": _INT, "offset": _INT, "limit": _INT, "jobs": _list("DeadJob")}),
    "CurrentJob": _obj({"id": _STR, "queue": _STR, "task": _null(_STR), "attempt": _null(_INT),
                        "worker": _null(_STR), "started": _WHEN, "progress": {"anyOf": [_PROGRESS, {"type": "null"}]}}),
    "Worker": _obj({"id": _STR, "host": _STR, "pid": _INT, "queues": {"type": "array", "items": _STR},
                    "concurrency": _INT, "processed": _INT, "started": _WHEN, "heartbeat": _WHEN,
                    "jobs": _list("CurrentJob")}),
    "Workers": _obj({"workers": _list("Worker")}),
    "Schedule": _obj({"id": _STR, "task": _STR, "cron": _null(_STR), "every": _null(_NUM), "tz": _STR,
                      "args": {"type": "array"}, "kwargs": {"type": "object"}, "queue": _STR, "next_at": _WHEN,
                      "last_at": _WHEN, "runs": _INT, "limit": _null(_INT), "start_at": _WHEN, "end_at": _WHEN,
                      "paused": _BOOL, "source": {"enum": ["code", "api"]}, "overlap": _STR, "catchup": _STR,
                      "skipped_at": _WHEN, "when": _STR}),
    "Schedules": _obj({"schedules": _list("Schedule")}),
    "StatsPoint": _obj({"at": {"type": "string", "format": "date-time"}, **{
        k: {"type": "integer", "minimum": 0} for k in (
            "enqueued", "started", "succeeded", "failed", "retried", "dead", "runtime_ms_max", "wait_ms_max")},
        "runtime_ms_avg": _NUM, "wait_ms_avg": _NUM}),
    "Stats": _obj({"queue": _null(_STR), "task": _null(_STR), "since": _INT, "step": _INT,
                   "points": _list("StatsPoint")}),
    "Partition": _obj({"queue": _STR, "name": _STR, "ready": _INT, "running": _INT, "paused": _BOOL,
                       "paused_until": _WHEN, "max_running": _null(_INT), "rate_limit": _null(_STR),
                       "own_limits": _BOOL, "blocked": _null(_STR)}),
    "Partitions": _obj({"queue": _STR, "partitions": _list("Partition")}),
    "Redis": _obj({"version": _null(_STR), "used_memory": _null(_INT), "max_memory": _null(_INT),
                   "eviction_policy": _null(_STR), "connected_clients": _null(_INT), "warning": _null(_STR)}),
    "Session": _obj({"csrf": _STR, "read_only": _BOOL}),
    "Done": _obj({"message": _STR, "changed": _BOOL}, {"count": _INT, "job_id": _STR}),
}


def _response(name: str, what: str) -> dict[str, Any]:
    return {"description": what, "content": {"application/json": {"schema": _ref(name)}}}


_ERRORS = {code: _response("Error", what) for code, what in (
    ("400", "bad input (unknown queue, state or action)"), ("401", "no token (see Authorization)"),
    ("404", "no such job"), ("503", "Redis unreachable"))}
_ACTION_ERRORS = {**_ERRORS, "403": _response("Error", "read-only, or the CSRF token missing (cookie session)"),
                  "409": _response("Error", "an action on every matching dead job without confirm=yes")}


def _param(name: str, where: str = "query", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema or _STR}


_PAGE = [_param("offset", schema={"type": "integer", "minimum": 0}),
         _param("limit", schema={"type": "integer", "minimum": 1, "maximum": 500})]
_DEAD_FILTER = [_param("queue"), _param("task"), _param("q")]


def _get(name: str, what: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"get": {"summary": what, "parameters": params or [], "responses": {"200": _response(name, what),
                                                                                   **_ERRORS}}}


def _post(what: str, params: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    return {"post": {"summary": what, "parameters": params,
                     "requestBody": {"required": False, "content": {"application/json": {"schema": body}}},
                     "responses": {"200": _response("Done", what), **_ACTION_ERRORS}}}


def _action(values: tuple[str, ...]) -> dict[str, Any]:
    return _param("action", "path", {"enum": list(values)})


PATHS: dict[str, Any] = {
    "/api/v1/queues": _get("Queues", "every known queue's depths"),
    "/api/v1/queues/{name}/jobs": _get("JobPage", "a queue's jobs in one state, a page at a time",
                                       [_param("name", "path"), _param("state"), *_PAGE]),
    "/api/v1/queues/{name}/partitions": _get("Partitions", "a queue's partitions, largest backlog first",
                                             [_param("name", "path")]),
    "/api/v1/jobs/{job_id}": _get("Job", "one job, decoded", [_param("job_id", "path"), _param("queue")]),
    "/api/v1/dead": _get("DeadPage", "dead jobs matching the filter, newest first", [*_DEAD_FILTER, *_PAGE]),
    "/api/v1/workers": _get("Workers", "live workers with the jobs they run"),
    "/api/v1/schedules": _get("Schedules", "every schedule, code and stored"),
    "/api/v1/redis": _get("Redis", "the Redis server's facts"),
    "/api/v1/stats": _get("Stats", "history per step (?queue=, ?task=, ?since= seconds, ?step= seconds, 60 or a "
                                   "multiple; over more than a day, rounded up to whole hours: the step "
                                   "returned), oldest first"),
    "/api/v1/session": _get("Session", "the CSRF token a cookie session's POSTs send as X-CSRF-Token"),
    "/api/v1/jobs/{job_id}/{action}": _post("cancel, abort, replay or purge a job",
                                            [_param("job_id", "path"), _action(("cancel", "abort", "replay", "purge"))],
                                            _obj({}, {"queue": _STR})),
    "/api/v1/queues/{name}/{action}": _post("pause or resume a queue",
                                            [_param("name", "path"), _action(("pause", "resume"))], _obj({})),
    "/api/v1/queues/{name}/partitions/{action}": _post(
        "pause or resume a partition, or end its backoff",
        [_param("name", "path"), _action(("pause", "resume", "end-backoff"))], _obj({"partition": _STR})),
    "/api/v1/dead/{action}": _post(
        "replay or purge the dead jobs of `ids`, or (confirm: yes) every one the filter matches",
        [_action(("replay", "purge"))],
        _obj({}, {"ids": {"type": "array", "items": _STR}, "queue": _STR, "task": _STR, "q": _STR,
                  "confirm": {"enum": ["yes"]}})),
    "/api/v1/schedules/{action}": _post("pause, resume, run now or remove a schedule",
                                        [_action(("pause", "resume", "run", "remove"))], _obj({"schedule": _STR})),
    "/api/v1/events": {"get": {"summary": "job transitions as server-sent events (event: job, data: a JSON "
                                          "object as `taskq events --json` prints)",
                               "parameters": [_param("queue"), _param("since"), _param("timeout", schema=_NUM)],
                               "responses": {"200": {"description": "an event stream",
                                                     "content": {"text/event-stream": {"schema": _STR}}}}}},
}


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "taskq dashboard API", "version": VERSION},
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "taskq_session"}}},
        "security": [{"bearer": []}, {"session": []}, {}],
        "paths": PATHS,
    }
