"""The web dashboard over HTTP: every page and action, escaping, the CSRF token, read-only mode,
the bearer token and its session cookie, and `taskq dashboard` refusing to listen beyond
loopback without a token. (tests/test_dashboard_browser.py drives it in headless Chromium.)"""

from __future__ import annotations

import inspect
import re
import socket

import pytest
from click.testing import CliRunner
from starlette.routing import Route
from starlette.testclient import TestClient

import taskq
from taskq import cli
from taskq.testing import drain
from taskq.web import create_app


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


@pytest.fixture
def shop(app: taskq.TaskQ) -> taskq.TaskQ:
    @app.task(retries=0)
    def greet(name: str) -> str:
        if name == "boom":
            raise ValueError("no <b>boom</b>")
        return f"hello {name}"

    @app.task(queue="mail", cron="0 * * * *")
    def digest() -> None: ...

    greet.delay("<script>alert(1)</script>")
    greet.delay("boom")
    drain(app)
    greet.delay("ada")  # ready
    greet.options(delay=600).delay("later")  # scheduled
    digest.delay()
    return app


def test_every_page_renders_and_escapes(shop: taskq.TaskQ) -> None:
    client = TestClient(create_app(shop))
    home = client.get("/")
    assert home.status_code == 200 and "Queues" in home.text and 'href="/queues/default"' in home.text
    assert "<svg" in home.text and "redis://" not in home.text and "memory://" not in home.text
    queue = client.get("/queues/default?state=ready")
    assert queue.status_code == 200 and "greet" in queue.text
    scheduled = client.get("/queues/default", params={"state": "scheduled"}).text
    assert scheduled.count("/jobs/") == 1
    dead = client.get("/dead")
    assert dead.status_code == 200 and "retries_exhausted" in dead.text
    dead_id = re.search(r'href="/jobs/([0-9a-f]{32})\?queue=default"', dead.text).group(1)  # type: ignore[union-attr]
    job = client.get(f"/jobs/{dead_id}")
    assert job.status_code == 200 and "ValueError" in job.text
    assert "<b>boom</b>" not in job.text and "&lt;b&gt;boom&lt;/b&gt;" in job.text  # the traceback is escaped
    page = client.get("/workers")
    assert page.status_code == 200 and "digest" in page.text and "0 * * * *" in page.text
    partial = client.get("/", headers={"X-Partial": "1"})
    assert partial.status_code == 200 and "<html" not in partial.text and "Queues" in partial.text
    assert client.get("/jobs/nope").status_code == 404
    assert client.get("/queues/nope").status_code == 400
    assert client.get("/search", params={"id": dead_id}, follow_redirects=False).headers["location"] == \
        f"/jobs/{dead_id}"


def test_arguments_are_escaped(app: taskq.TaskQ) -> None:
    @app.task
    def echo(text: str) -> str:
        return text

    job = echo.delay("<script>alert(1)</script>")
    html = TestClient(create_app(app)).get(f"/jobs/{job.id}").text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_succeeded_jobs_page_shows_its_attempt_of_max_attempts(app: taskq.TaskQ) -> None:
    @app.task(retries=2)
    def one() -> int:
        return 1

    job = one.delay()
    drain(app)
    html = TestClient(create_app(app)).get(f"/jobs/{job.id}").text
    assert "<th>attempt</th><td>1 of 3</td>" in html and "None" not in html


def test_actions_need_the_csrf_token_and_do_what_they_say(shop: taskq.TaskQ) -> None:
    client = TestClient(create_app(shop))
    dead = client.get("/dead").text
    dead_id = re.search(r'href="/jobs/([0-9a-f]{32})\?queue=default"', dead).group(1)  # type: ignore[union-attr]
    refused = client.post(f"/jobs/{dead_id}/replay", data={"queue": "default"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert shop.job(dead_id).status() is taskq.Status.DEAD
    token = csrf_of(dead)
    replayed = client.post(f"/jobs/{dead_id}/replay", data={"queue": "default", "csrf": token}, follow_redirects=False)
    assert replayed.status_code == 303 and shop.job(dead_id).status() is taskq.Status.QUEUED
    assert "replay" in client.get(replayed.headers["location"]).text
    ready = shop.broker.job_ids("default", "ready")
    assert client.post(f"/jobs/{ready[0]}/cancel", data={"csrf": token}).status_code == 200
    assert shop.job(ready[0]).status() is taskq.Status.CANCELLED
    later = shop.broker.job_ids("default", "scheduled")[0]
    aborted = client.post(f"/jobs/{later}/abort", data={"csrf": token})
    assert aborted.status_code == 200 and "abort" in aborted.text
    assert shop.job(later).info().reason == f"aborted: dashboard on {socket.gethostname()}"
    assert client.post(f"/jobs/{later}/explode", data={"csrf": token}).status_code == 400
    assert client.post("/queues/default/pause", data={"csrf": token}).status_code == 200
    assert shop.broker.paused(["default"]) == {"default"} and "paused" in client.get("/").text
    assert client.post("/queues/default/resume", data={"csrf": token}).status_code == 200
    assert shop.broker.paused(["default"]) == set()
    drain(shop, advance=1)  # the replayed job fails again: dead once more
    asked = client.post("/dead/purge", data={"csrf": token})  # one click never purges everything
    assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.text
    assert shop.broker.depths("default").dead == 1
    assert client.post("/dead/purge", data={"csrf": token, "confirm": "yes"}).status_code == 200
    assert shop.broker.depths("default").dead == 0


def test_read_only_hides_and_refuses_actions(shop: taskq.TaskQ) -> None:
    client = TestClient(create_app(shop, read_only=True))
    dead = client.get("/dead").text
    assert "read-only" in dead and 'method="post"' not in dead
    dead_id = re.search(r'href="/jobs/([0-9a-f]{32})\?queue=default"', dead).group(1)  # type: ignore[union-attr]
    refused = client.post(f"/jobs/{dead_id}/purge", data={"queue": "default"})
    assert refused.status_code == 403 and "read-only" in refused.text
    assert shop.job(dead_id).status() is taskq.Status.DEAD


def test_a_token_is_required_by_header_or_session_cookie(shop: taskq.TaskQ) -> None:
    client = TestClient(create_app(shop, token="s3cret"))
    assert client.get("/").status_code == 401 and client.get("/dead").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    opened = client.get("/?token=s3cret", follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/"  # the token leaves the URL
    assert "s3cret" not in opened.headers.get("set-cookie", "")
    assert client.get("/dead").status_code == 200  # the session cookie from now on
    assert TestClient(create_app(shop, token="s3cret")).get("/?token=nope").status_code == 401


def test_the_cli_refuses_to_listen_beyond_loopback_without_a_token(shop: taskq.TaskQ,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.parts, "load_app", lambda path, url=None: shop)
    out = CliRunner().invoke(cli.main, ["dashboard", "x:app", "--host", "0.0.0.0"])
    assert out.exit_code == 2 and "--token" in out.output


def test_pages_run_off_the_event_loop(shop: taskq.TaskQ) -> None:
    """The read model blocks on Redis: a page handler must be a plain function (Starlette runs it
    on its thread pool), never a coroutine that would hold the server's event loop."""
    routes = [r for r in create_app(shop).routes if isinstance(r, Route) and "GET" in (r.methods or ())]
    assert len(routes) == 6
    assert [r.path for r in routes if inspect.iscoroutinefunction(r.endpoint)] == []


def test_the_cli_fails_in_one_line_on_a_busy_port(shop: taskq.TaskQ, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.parts, "load_app", lambda path, url=None: shop)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        out = CliRunner().invoke(cli.main, ["dashboard", "x:app", "--port", str(port)])
    assert out.exit_code == 1, out.output
    assert out.output == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_the_queue_page_lists_partitions_and_pauses_resumes_and_ends_a_backoff(app: taskq.TaskQ) -> None:
    app.queue("default", partition_max_running=3, fair=True)

    @app.task
    def noop(i: int) -> int:
        return i

    odd = "<b>host/x</b>"  # any text: escaped on the page, sent in the form, not the path
    noop.options(partition="big").map(range(5))
    first = noop.options(partition=odd).delay(0)
    plain = noop.delay(1)  # no partition: one of its own in a fair queue
    client = TestClient(create_app(app))
    page = client.get("/queues/default").text
    table = page.split('<table id="partitions">', 1)[1].split("</table>", 1)[0]
    assert table.index(">big<") < table.index("&lt;b&gt;host/x&lt;/b&gt;") and "<b>host" not in page
    assert "<td>(no partition)</td>" in table and table.count("/partitions/pause") == 2  # '' cannot be paused
    assert "partitions of <a href=\"/queues/default\">default</a>: 3 with jobs waiting, the largest backlog: " \
        "big (5 ready)" in client.get("/").text
    token = csrf_of(page)
    refused = client.post("/queues/default/partitions/pause", data={"partition": odd})
    assert refused.status_code == 403 and not app.partition("default", odd).info().paused
    paused = client.post("/queues/default/partitions/pause", data={"partition": odd, "csrf": token},
                         follow_redirects=False)
    assert paused.status_code == 303 and app.partition("default", odd).info().paused
    page = client.get(paused.headers["location"]).text
    assert "pause &lt;b&gt;host/x&lt;/b&gt;: done" in page and 'class="paused">paused' in page
    assert client.post("/queues/default/partitions/resume", data={"partition": odd, "csrf": token}).status_code == 200
    assert not app.partition("default", odd).info().paused
    app.partition("default", "big").backoff(600)
    page = client.get("/queues/default").text
    assert "backing off until" in page and 'value="end-backoff"' in page
    ended = client.post("/queues/default/partitions/end-backoff", data={"partition": "big", "csrf": token})
    assert ended.status_code == 200 and app.partition("default", "big").info().paused_until is None
    for path, form in (("/queues/default/partitions/explode", {"partition": "big"}),
                       ("/queues/nope/partitions/pause", {"partition": "big"}),
                       ("/queues/default/partitions/pause", {})):
        assert client.post(path, data={**form, "csrf": token}).status_code == 400, path
    assert '<td id="partition">&lt;b&gt;host/x&lt;/b&gt;</td>' in client.get(f"/jobs/{first.id}").text
    assert 'id="partition"' not in client.get(f"/jobs/{plain.id}").text
    read_only = TestClient(create_app(app, read_only=True)).get("/queues/default").text
    assert '<table id="partitions">' in read_only and "/partitions/pause" not in read_only


def test_the_queue_page_charts_its_history_over_each_range(shop: taskq.TaskQ) -> None:
    client = TestClient(create_app(shop))
    page = client.get("/queues/default").text
    history = page.split('<div id="history">', 1)[1].split("</div>", 1)[0]
    assert history.count("<svg") == 4 and "runtime, average (ms)" in history and "wait before start" in history
    succeeded = sum(p.succeeded for p in shop.stats(queue="default", since=3600))
    first = history.split("</svg>", 1)[0]  # the succeeded chart: its columns add up to the history's count
    assert succeeded > 0 and sum(int(n) for n in re.findall(r"<title>(\d+) jobs</title>", first)) == succeeded
    for shown in ("24h", "7d"):
        other = client.get("/queues/default", params={"range": shown}).text
        assert f"<strong>{shown}</strong>" in other and other.count("<svg") >= 4
    assert client.get("/queues/default", params={"range": "forever"}).status_code == 200  # the default, 1h
