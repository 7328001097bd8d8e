"""The dashboard's JSON API (/api/v1) against a real redis-server: every endpoint with jobs in
every state, each response checked against the OpenAPI document it serves; the token, CSRF and
read-only rules; hostile values as exact JSON and escaped HTML; the dead letters' filters, pages
and confirm step; job events as server-sent events."""

from __future__ import annotations

import inspect
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from schema_check import errors, response_schema
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import taskq
from taskq.testing import drain
from taskq.web import create_app

HOSTILE = '</script><script>alert("x")</script>&amp; é \u2028'


class Checked:
    """A TestClient whose every JSON response is validated against /api/v1/openapi.json."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.doc = client.get("/api/v1/openapi.json").json()

    def call(self, method: str, template: str, status: int = 200, *, params: dict[str, Any] | None = None,
             path: dict[str, str] | None = None, **kw: Any) -> Any:
        url = template
        for k, v in (path or {}).items():
            url = url.replace("{" + k + "}", v)
        r = self.client.request(method, url, params=params, **kw)
        assert r.status_code == status, (url, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()
        problems = errors(body, response_schema(self.doc, template, method, status), self.doc)
        assert problems == [], (url, problems)
        return body

    def get(self, template: str, status: int = 200, **kw: Any) -> Any:
        return self.call("GET", template, status, **kw)

    def post(self, template: str, status: int = 200, **kw: Any) -> Any:
        return self.call("POST", template, status, **kw)


@pytest.fixture
def shop(redis_url: str) -> Iterator[taskq.TaskQ]:
    """Jobs in every state on a real Redis: succeeded and dead (drained), ready, scheduled, one
    running on a live worker (released at the end), partitions, a stored schedule."""
    app = taskq.TaskQ(redis_url, lease=2)
    app.queue("tenants", fair=True)
    release = threading.Event()

    @app.task(retries=0)
    def greet(name: str) -> str:
        if name.startswith("boom"):
            raise ValueError(f"no {name}")
        return f"hello {name}"

    @app.task(queue="slow")
    def hold() -> None:
        release.wait(30)

    @app.task(queue="tenants")
    def sync(account: int) -> int:
        return account

    greet.delay(HOSTILE)
    for i in range(3):
        greet.delay(f"boom{i}")
    drain(app, ["default"])
    greet.delay("ada")
    greet.options(delay=600).delay("later")
    sync.options(partition="acme").map([(1,), (2,)])
    app.schedules.upsert("report:42", greet, cron="0 9 * * 1-5", args=("report",))
    running = hold.delay()
    worker = taskq.Worker(app, ["slow"], concurrency=1, grace=0.5)
    threading.Thread(target=worker.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while running.status() is not taskq.Status.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield app
    finally:
        release.set()
        worker.stop()


def test_every_read_fits_the_openapi_document(shop: taskq.TaskQ) -> None:
    api = Checked(TestClient(create_app(shop)))
    assert api.doc["openapi"] == "3.1.0" and all(p.startswith("/api/v1/") for p in api.doc["paths"])
    queues = {q["queue"]: q for q in api.get("/api/v1/queues")["queues"]}
    assert queues["default"]["dead"] == 3 and queues["default"]["ready"] == 1 and queues["slow"]["running"] == 1
    for state, n in (("ready", 1), ("scheduled", 1), ("running", 0), ("dead", 3)):
        page = api.get("/api/v1/queues/{name}/jobs", path={"name": "default"}, params={"state": state})
        assert len(page["jobs"]) == n and all(j["status"] in (state, "queued") for j in page["jobs"]), page
    one = api.get("/api/v1/queues/{name}/jobs", path={"name": "default"}, params={"state": "dead", "limit": "2"})
    rest = api.get("/api/v1/queues/{name}/jobs", path={"name": "default"},
                   params={"state": "dead", "limit": "2", "offset": "2"})
    assert one["more"] and len(rest["jobs"]) == 1 and not rest["more"]
    assert {j["id"] for j in one["jobs"]}.isdisjoint({j["id"] for j in rest["jobs"]})
    parts = api.get("/api/v1/queues/{name}/partitions", path={"name": "tenants"})["partitions"]
    assert [(p["name"], p["ready"]) for p in parts] == [("acme", 2)]
    dead_id = one["jobs"][0]["id"]
    job = api.get("/api/v1/jobs/{job_id}", path={"job_id": dead_id})
    assert job["status"] == "dead" and "ValueError" in job["error"] and job["actions"] == ["replay", "purge"]
    workers = api.get("/api/v1/workers")["workers"]
    assert len(workers) == 1 and [j["task"] for j in workers[0]["jobs"]] == ["hold"]
    running_id = workers[0]["jobs"][0]["id"]
    assert api.get("/api/v1/jobs/{job_id}", path={"job_id": running_id})["actions"] == ["abort"]
    schedules = api.get("/api/v1/schedules")["schedules"]
    assert [(s["id"], s["source"], s["args"]) for s in schedules] == [("report:42", "api", ["report"])]
    facts = api.get("/api/v1/redis")
    assert facts["version"] and facts["used_memory"] > 0 and facts["connected_clients"] >= 1
    assert facts["eviction_policy"] == "noeviction" and facts["warning"] is None
    session = api.get("/api/v1/session")
    assert session["read_only"] is False and session["csrf"]
    stats = api.get("/api/v1/stats", params={"queue": "default", "since": "600"})
    assert len(stats["points"]) == 10 and sum(p["dead"] for p in stats["points"]) == 3
    assert sum(p["enqueued"] for p in stats["points"]) == sum(p.enqueued for p in shop.stats("default", since=600))
    hourly = api.get("/api/v1/stats", params={"since": "7200", "step": "3600"})
    assert hourly["queue"] is None and len(hourly["points"]) == 2
    two_days = api.get("/api/v1/stats", params={"since": str(2 * 86400), "step": "300"})  # read by the hour
    assert two_days["step"] == 3600 and len(two_days["points"]) == 48
    api.get("/api/v1/stats", 400, params={"queue": "nope"})
    api.get("/api/v1/jobs/{job_id}", 404, path={"job_id": "nope"})
    api.get("/api/v1/queues/{name}/jobs", 400, path={"name": "nope"})
    api.get("/api/v1/queues/{name}/jobs", 400, path={"name": "default"}, params={"state": "gone"})
    api.get("/api/v1/dead", 400, params={"limit": "0"})


def test_an_eviction_policy_that_loses_jobs_is_warned_about(shop: taskq.TaskQ, redis_server: Any) -> None:
    redis_server.client().config_set("maxmemory-policy", "allkeys-lru")
    try:
        client = TestClient(create_app(shop))
        facts = Checked(client).get("/api/v1/redis")
        assert facts["eviction_policy"] == "allkeys-lru" and "noeviction" in facts["warning"]
        assert 'id="redis-warning"' in client.get("/").text
    finally:
        redis_server.client().config_set("maxmemory-policy", "noeviction")


def test_every_action_does_what_it_says(shop: taskq.TaskQ) -> None:
    api = Checked(TestClient(create_app(shop)))
    csrf = {"X-CSRF-Token": api.get("/api/v1/session")["csrf"]}
    act = "/api/v1/jobs/{job_id}/{action}"
    ready = shop.broker.job_ids("default", "ready")[0]
    assert api.post(act, path={"job_id": ready, "action": "cancel"}, headers=csrf)["changed"]
    assert shop.job(ready).status() is taskq.Status.CANCELLED
    later = shop.broker.job_ids("default", "scheduled")[0]
    assert api.post(act, path={"job_id": later, "action": "abort"}, headers=csrf, json={"queue": "default"})["changed"]
    dead = shop.broker.job_ids("default", "dead")
    said = api.post(act, path={"job_id": dead[0], "action": "replay"}, headers=csrf)
    assert said["changed"] and shop.job(dead[0]).status() is taskq.Status.QUEUED
    assert api.post(act, path={"job_id": dead[1], "action": "purge"}, headers=csrf)["changed"]
    assert not api.post(act, path={"job_id": dead[0], "action": "purge"}, headers=csrf)["changed"]  # not dead now
    api.post(act, 400, path={"job_id": dead[2], "action": "explode"}, headers=csrf)
    api.post(act, 400, path={"job_id": dead[2], "action": "replay"}, headers=csrf, content=b"[1]")
    q = "/api/v1/queues/{name}/{action}"
    assert api.post(q, path={"name": "default", "action": "pause"}, headers=csrf)["changed"]
    assert shop.broker.paused(["default"]) == {"default"}
    assert not api.post(q, path={"name": "default", "action": "pause"}, headers=csrf)["changed"]
    assert api.post(q, path={"name": "default", "action": "resume"}, headers=csrf)["changed"]
    p = "/api/v1/queues/{name}/partitions/{action}"
    api.post(p, path={"name": "tenants", "action": "pause"}, headers=csrf, json={"partition": "acme"})
    assert shop.partition("tenants", "acme").info().paused
    api.post(p, path={"name": "tenants", "action": "resume"}, headers=csrf, json={"partition": "acme"})
    assert not shop.partition("tenants", "acme").info().paused
    s = "/api/v1/schedules/{action}"
    api.post(s, path={"action": "pause"}, headers=csrf, json={"schedule": "report:42"})
    info = shop.schedules.get("report:42")
    assert info is not None and info.paused
    api.post(s, path={"action": "resume"}, headers=csrf, json={"schedule": "report:42"})
    run = api.post(s, path={"action": "run"}, headers=csrf, json={"schedule": "report:42"})
    assert shop.job(run["job_id"]).status() is taskq.Status.QUEUED
    assert api.post(s, path={"action": "remove"}, headers=csrf, json={"schedule": "report:42"})["changed"]
    assert shop.schedules.get("report:42") is None
    api.post(s, 400, path={"action": "remove"}, headers=csrf, json={"schedule": 42})


def test_the_token_csrf_and_read_only_rules(shop: taskq.TaskQ) -> None:
    client = TestClient(create_app(shop, token="s3cret"))
    api = Checked(TestClient(create_app(shop, token="s3cret"), headers={"Authorization": "Bearer s3cret"}))
    assert client.get("/api/v1/queues").status_code == 401
    assert client.get("/api/v1/events", params={"timeout": "0.1"}).status_code == 401
    assert client.get("/api/v1/queues", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/api/v1/queues/default/pause").status_code == 401
    # a bearer token: no CSRF token needed
    assert api.post("/api/v1/queues/{name}/{action}", path={"name": "default", "action": "pause"})["changed"]
    # the browser's session cookie: POSTs need the CSRF token
    assert client.get("/?token=s3cret").status_code == 200
    refused = client.post("/api/v1/queues/default/resume")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    assert client.post("/api/v1/queues/default/resume", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert shop.broker.paused(["default"]) == {"default"}
    csrf = client.get("/api/v1/session").json()["csrf"]
    assert client.post("/api/v1/queues/default/resume", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert shop.broker.paused(["default"]) == set()
    # read-only: every action refused, even with a bearer token; reads work
    ro = Checked(TestClient(create_app(shop, token="s3cret", read_only=True),
                            headers={"Authorization": "Bearer s3cret"}))
    dead = shop.broker.job_ids("default", "dead")[0]
    for template, path, body in (
        ("/api/v1/jobs/{job_id}/{action}", {"job_id": dead, "action": "purge"}, {}),
        ("/api/v1/queues/{name}/{action}", {"name": "default", "action": "pause"}, {}),
        ("/api/v1/queues/{name}/partitions/{action}", {"name": "tenants", "action": "pause"}, {"partition": "acme"}),
        ("/api/v1/dead/{action}", {"action": "purge"}, {"confirm": "yes"}),
        ("/api/v1/schedules/{action}", {"action": "remove"}, {"schedule": "report:42"}),
    ):
        assert "read-only" in ro.post(template, 403, path=path, json=body)["error"]
    assert shop.broker.depths("default").dead == 3 and shop.schedules.get("report:42") is not None
    assert ro.get("/api/v1/session")["read_only"] is True


def test_hostile_values_are_exact_json_and_escaped_html(shop: taskq.TaskQ) -> None:
    @shop.task
    def echo(text: str, extra: dict[str, str]) -> str:
        return text

    job = echo.delay(HOSTILE, {HOSTILE: HOSTILE})
    client = TestClient(create_app(shop))
    body = Checked(client).get("/api/v1/jobs/{job_id}", path={"job_id": job.id})
    assert body["args"] == [HOSTILE, {HOSTILE: HOSTILE}]
    html = client.get(f"/jobs/{job.id}").text
    # shown as indented JSON, escaped: no tag of the value reaches the page
    assert "<script>alert" not in html and r"&lt;script&gt;alert(\&#34;x\&#34;)&lt;/script&gt;" in html
    dead = client.get("/dead", params={"task": HOSTILE, "q": HOSTILE}).text
    assert '<script>alert("x")</script>' not in dead and "&lt;/script&gt;" in dead


def test_dead_letters_filter_page_and_confirm(shop: taskq.TaskQ) -> None:
    @shop.task(retries=0, queue="mail")
    def send(to: str) -> None:
        raise ConnectionError(f"smtp down for {to}")

    for to in ("a", "b"):
        send.delay(to)
    drain(shop, ["mail"])
    client = TestClient(create_app(shop))
    api = Checked(client)
    assert api.get("/api/v1/dead")["total"] == 5
    assert {j["task"] for j in api.get("/api/v1/dead", params={"queue": "mail"})["jobs"]} == {"send"}
    assert api.get("/api/v1/dead", params={"task": "GRE"})["total"] == 3  # task: a part, any case
    by_error = api.get("/api/v1/dead", params={"q": "SMTP down for b"})
    assert [j["task"] for j in by_error["jobs"]] == ["send"] and by_error["total"] == 1
    assert api.get("/api/v1/dead", params={"q": "boom1"})["total"] == 1
    first = api.get("/api/v1/dead", params={"limit": "2"})
    second = api.get("/api/v1/dead", params={"limit": "2", "offset": "2"})
    third = api.get("/api/v1/dead", params={"limit": "2", "offset": "4"})
    ids = [j["id"] for p in (first, second, third) for j in p["jobs"]]
    assert len(ids) == len(set(ids)) == 5 and first["total"] == 5
    times = [j["dead_since"] for p in (first, second, third) for j in p["jobs"]]
    assert times == sorted(times, reverse=True)  # newest first
    api.get("/api/v1/dead", 400, params={"queue": "nope"})
    csrf = {"X-CSRF-Token": api.get("/api/v1/session")["csrf"]}
    # every matching one needs confirm=yes; ids do not
    api.post("/api/v1/dead/{action}", 409, path={"action": "purge"}, headers=csrf, json={"queue": "mail"})
    assert shop.broker.depths("mail").dead == 2
    gone = api.post("/api/v1/dead/{action}", path={"action": "purge"}, headers=csrf, json={"ids": [ids[0]]})
    assert gone["count"] == 1
    mail_dead = shop.broker.depths("mail").dead
    replayed = api.post("/api/v1/dead/{action}", path={"action": "replay"}, headers=csrf,
                        json={"task": "send", "confirm": "yes"})
    assert replayed["count"] == mail_dead and shop.broker.depths("mail").dead == 0
    assert shop.broker.depths("default").dead + mail_dead == 4  # the other queue's untouched
    # the page: filters, one page, ticked rows, and a confirmation before "all matching"
    page = client.get("/dead", params={"task": "greet"}).text
    rows = page.split('<table id="dead">')[1]
    assert rows.count('type="checkbox" name="id"') == shop.broker.depths("default").dead and "send" not in rows
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    asked = client.post("/dead/purge", data={"csrf": token, "task": "greet"})
    assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.text and "Purge" in asked.text
    assert shop.broker.depths("default").dead >= 2
    one = shop.broker.job_ids("default", "dead")[0]
    ticked = client.post("/dead/replay", data={"csrf": token, "id": [one]}, follow_redirects=False)
    assert ticked.status_code == 303 and shop.job(one).status() is taskq.Status.QUEUED
    left = shop.broker.depths("default").dead
    done = client.post("/dead/purge", data={"csrf": token, "task": "greet", "confirm": "yes"},
                       follow_redirects=False)
    assert done.status_code == 303 and f"purged+{left}" in done.headers["location"]
    assert shop.broker.depths("default").dead == 0


def test_job_events_stream_as_server_sent_events(shop: taskq.TaskQ) -> None:
    client = TestClient(create_app(shop))
    r = client.get("/api/v1/events", params={"since": "0", "timeout": "0.5", "queue": "default"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    messages = [m for m in r.text.split("\n\n") if m.startswith("id: ")]
    events = [json.loads(m.split("data: ", 1)[1]) for m in messages]
    assert all("\nevent: job\n" in m for m in messages)
    kinds = [e["kind"] for e in events]
    assert kinds.count("dead") == 3 and kinds.count("succeeded") == 1 and {e["queue"] for e in events} == {"default"}
    assert messages[0].split("\n", 1)[0] == f"id: {events[0]['event_id']}" and kinds.count("enqueued") >= 5
    # from now on ("$"): only what happens after the stream opened
    dead = shop.broker.job_ids("default", "dead")[0]
    threading.Timer(0.3, lambda: client.post(f"/api/v1/jobs/{dead}/replay",
                                             headers={"X-CSRF-Token": client.get("/api/v1/session").json()["csrf"]})
                    ).start()
    later = client.get("/api/v1/events", params={"timeout": "1.5"}).text
    assert '"kind": "enqueued"' in later and dead in later and '"kind": "dead"' not in later
    assert client.get("/api/v1/events", params={"queue": "nope"}).status_code == 400


def test_reads_run_off_the_event_loop(shop: taskq.TaskQ) -> None:
    """Like the pages, the API's reads block on Redis: plain functions (the thread pool); only the
    event stream and the POSTs (which hand their work to the pool) are coroutines."""
    api = next(r for r in create_app(shop).routes if isinstance(r, Mount) and r.path == "/api/v1")
    gets = [r for r in api.routes if isinstance(r, Route) and "GET" in (r.methods or ())]
    assert len(gets) == 12
    assert [r.path for r in gets if inspect.iscoroutinefunction(r.endpoint)] == ["/events"]


def test_memory_has_no_server_facts_and_the_overview_says_so() -> None:
    app = taskq.TaskQ("memory://web-api-facts")
    client = TestClient(create_app(app))
    facts = Checked(client).get("/api/v1/redis")
    assert set(facts.values()) == {None}  # fakeredis has no INFO: nothing made up
    page = client.get("/").text
    assert '<table id="redis">' in page and 'id="redis-warning"' not in page


def test_run_now_logs_and_ended_listings_through_the_api(shop: taskq.TaskQ) -> None:
    api = Checked(TestClient(create_app(shop)))
    csrf = {"X-CSRF-Token": api.get("/api/v1/session")["csrf"]}
    later = shop.broker.job_ids("default", "scheduled")[0]
    job = api.get("/api/v1/jobs/{job_id}", path={"job_id": later})
    assert job["due"] and job["actions"] == ["run-now", "cancel"] and job["logs"] == []
    said = api.post("/api/v1/jobs/{job_id}/{action}", path={"job_id": later, "action": "run-now"}, headers=csrf)
    assert said["changed"] and shop.job(later).status() is taskq.Status.QUEUED
    assert api.get("/api/v1/jobs/{job_id}", path={"job_id": later})["due"] is None
    done = api.get("/api/v1/queues/{name}/jobs", path={"name": "default"}, params={"state": "succeeded"})
    assert done["jobs"] and all(j["status"] == "succeeded" for j in done["jobs"])
