"""The dashboard in a real browser: headless Chromium (Debian's chromium + chromium-driver, which
`make test` installs) loads the overview of a queue with jobs in every state, opens a dead job,
clicks replay, and sees the job succeed. The overview's screenshot is saved; with
$TASKQ_DASHBOARD_SCREENSHOT set, also to that path (docs/dashboard.png is made so); with
$TASKQ_DASHBOARD_SCREENSHOTS set to a directory, the overview, queue and job pages go there as
dashboard-overview.png, dashboard-queue.png, dashboard-job.png (docs/ holds them). Pages update
live from server-sent events: a replay on the dead letters page shows on another open page."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

import taskq
from taskq.testing import drain
from taskq.web import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: a hang guard for one browser step, not a timing assertion
GUARD = 30


def shoot(browser: webdriver.Chrome, tmp_path: Path, name: str) -> Path:
    """A screenshot of the page, kept in $TASKQ_DASHBOARD_SCREENSHOTS as dashboard-NAME.png if set."""
    shot = tmp_path / f"{name}.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("TASKQ_DASHBOARD_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["TASKQ_DASHBOARD_SCREENSHOTS"]) / f"dashboard-{name}.png")
    return shot


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(GUARD)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def served(redis_url: str) -> Iterator[tuple[taskq.TaskQ, str, dict[str, bool]]]:
    """An app with jobs in every state, its dashboard on a free loopback port, and a worker."""
    app = taskq.TaskQ(redis_url, lease=2)
    state = {"fixed": False}

    @app.task(retries=0)
    def charge(cents: int) -> str:
        if cents < 0 and not state["fixed"]:
            raise ValueError(f"card declined for {cents}")
        return f"charged {cents}"

    @app.task(queue="slow")
    def crunch(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    charge.delay(100)
    charge.delay(-5)  # dead
    drain(app, ["default"])
    charge.options(delay=3600).delay(7)  # scheduled
    for i in range(3):
        charge.options(queue="backlog").delay(i)  # ready: nobody consumes "backlog"
    crunch.delay(60)  # running while the page is open (the worker is stopped at the end)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(app), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    worker = taskq.Worker(app, ["default", "slow"], concurrency=2, grace=0.5)
    threading.Thread(target=worker.run, daemon=True).start()
    deadline = time.monotonic() + GUARD
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    try:
        yield app, f"http://127.0.0.1:{port}", state
    finally:
        worker.stop()
        server.should_exit = True


def test_the_overview_then_replaying_a_dead_job_until_it_succeeds(
    browser: webdriver.Chrome, served: tuple[taskq.TaskQ, str, dict[str, bool]], tmp_path: Path
) -> None:
    _, base, state = served
    wait = WebDriverWait(browser, GUARD)
    browser.get(base + "/")
    wait.until(lambda d: "running" in d.find_element(By.ID, "queues").text
               and d.find_element(By.TAG_NAME, "main").text.count("crunch") >= 1)
    rows = {r.find_elements(By.TAG_NAME, "td")[0].text: [c.text for c in r.find_elements(By.TAG_NAME, "td")]
            for r in browser.find_elements(By.CSS_SELECTOR, "#queues tr")[1:]}
    assert rows["backlog"][1] == "3" and rows["default"][2] == "1" and rows["default"][5] == "1"
    assert rows["slow"][4] == "1"  # running
    shot = shoot(browser, tmp_path, "overview")
    if os.environ.get("TASKQ_DASHBOARD_SCREENSHOT"):
        shutil.copy(shot, os.environ["TASKQ_DASHBOARD_SCREENSHOT"])

    browser.find_element(By.LINK_TEXT, "Dead letters").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "dead")))
    assert "card declined for -5" in browser.find_element(By.ID, "dead").text
    browser.find_element(By.CSS_SELECTOR, "#dead td a").click()
    wait.until(lambda d: d.find_element(By.ID, "status").text == "dead")
    state["fixed"] = True  # the card works now
    browser.find_element(By.CSS_SELECTOR, "#actions button[value=replay]").click()
    wait.until(lambda d: "replay" in d.find_element(By.CLASS_NAME, "flash").text)
    # the page refreshes itself: the job runs again on the worker and the page says so
    wait.until(lambda d: d.find_element(By.ID, "status").text == "succeeded")
    assert "charged -5" in browser.find_element(By.ID, "job").text
    shoot(browser, tmp_path, "job")
    browser.get(base + "/queues/default?state=succeeded")  # the ended jobs kept, and the history with data
    wait.until(expected_conditions.presence_of_element_located((By.ID, "jobs")))
    shoot(browser, tmp_path, "queue")


def test_a_replay_on_the_dead_letters_page_shows_live_on_another_page(
    browser: webdriver.Chrome, served: tuple[taskq.TaskQ, str, dict[str, bool]]
) -> None:
    app, base, _ = served
    go = threading.Event()
    runs = []

    @app.task(retries=0)
    def pay(order: int) -> str:
        runs.append(order)
        if len(runs) == 1:
            raise ValueError("gateway down")
        go.wait(GUARD)
        return f"paid {order}"

    job = pay.delay(42)
    wait = WebDriverWait(browser, GUARD)
    wait.until(lambda _: job.status() is taskq.Status.DEAD)
    browser.get(f"{base}/jobs/{job.id}")
    wait.until(lambda d: d.find_element(By.ID, "status").text == "dead")
    times = browser.find_elements(By.CSS_SELECTOR, "#job time")
    assert times and all(t.text.endswith(" ago") or t.text == "just now" for t in times)  # relative times
    assert all(t.get_attribute("title").endswith("Z") for t in times)  # the ISO time in the title
    browser.execute_script("window.taskqKept = 'the same page';")
    job_page = browser.current_window_handle

    browser.switch_to.new_window("window")
    browser.get(base + "/dead?task=pay")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "dead")))
    browser.find_element(By.CSS_SELECTOR, f'#dead input[name=id][value="{job.id}"]').click()
    browser.find_element(By.CSS_SELECTOR, "#dead-bulk button[value='replay selected']").click()
    wait.until(lambda d: "replayed 1 dead job(s)" in d.find_element(By.CLASS_NAME, "flash").text)

    browser.switch_to.window(job_page)
    wait.until(lambda d: d.find_element(By.ID, "status").text == "running")
    go.set()  # it ends now, while this page is in front: only an event can tell the page
    wait.until(lambda d: d.find_element(By.ID, "status").text == "succeeded")
    assert "paid 42" in browser.find_element(By.ID, "job").text
    assert browser.execute_script("return window.taskqKept;") == "the same page"  # never reloaded


def test_a_queues_partitions_render_and_one_pauses(
    browser: webdriver.Chrome, served: tuple[taskq.TaskQ, str, dict[str, bool]]
) -> None:
    app, base, _ = served
    app.queue("tenants", fair=True)  # nobody consumes it: every job waits in its partition's lane

    @app.task(queue="tenants")
    def sync(account: int) -> int:
        return account

    sync.options(partition="acme").map(range(4))
    sync.options(partition="globex").delay(0)
    wait = WebDriverWait(browser, GUARD)
    browser.get(base + "/queues/tenants")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "partitions")))
    rows = [[c.text for c in r.find_elements(By.TAG_NAME, "td")]
            for r in browser.find_elements(By.CSS_SELECTOR, "#partitions tr")[1:]]
    assert [r[:3] for r in rows] == [["acme", "4", "0"], ["globex", "1", "0"]]  # the largest backlog first
    browser.find_elements(By.CSS_SELECTOR, "#partitions button[value=pause]")[1].click()
    wait.until(lambda d: "pause globex: done" in d.find_element(By.CLASS_NAME, "flash").text)
    assert "paused" in browser.find_elements(By.CSS_SELECTOR, "#partitions tr")[2].text
    assert app.partition("tenants", "globex").info().paused


def test_a_stored_schedule_pauses_and_runs_from_the_page(
    browser: webdriver.Chrome, served: tuple[taskq.TaskQ, str, dict[str, bool]]
) -> None:
    app, base, _ = served

    @app.task
    def report(account: int) -> int:
        return account

    app.schedules.upsert("report:42", report, cron="0 9 * * 1-5", tz="Europe/Paris", args=(42,))
    wait = WebDriverWait(browser, GUARD)
    browser.get(base + "/workers")
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, '[data-schedule="report:42"]')))
    row = browser.find_element(By.CSS_SELECTOR, '[data-schedule="report:42"]')
    assert "0 9 * * 1-5" in row.text and "api" in row.text
    row.find_element(By.CSS_SELECTOR, "button[value=pause]").click()
    wait.until(lambda d: "pause report:42: done" in d.find_element(By.CLASS_NAME, "flash").text)
    assert "paused" in browser.find_element(By.CSS_SELECTOR, '[data-schedule="report:42"]').text
    info = app.schedules.get("report:42")
    assert info is not None and info.paused
    browser.find_element(By.CSS_SELECTOR, '[data-schedule="report:42"] button[value="run now"]').click()
    wait.until(lambda d: "run report:42: enqueued" in d.find_element(By.CLASS_NAME, "flash").text)
    job_id = browser.find_element(By.CLASS_NAME, "flash").text.split()[-1]
    wait.until(lambda d: app.job(job_id).status() is taskq.Status.SUCCEEDED)  # the served worker runs it
    assert app.job(job_id).result(timeout=GUARD) == 42


def test_the_overview_charts_its_history_and_a_job_page_shows_what_the_job_logged(
    browser: webdriver.Chrome, served: tuple[taskq.TaskQ, str, dict[str, bool]]
) -> None:
    app, base, _ = served

    @app.task
    def tally(n: int) -> int:
        taskq.current_job().log(f"counted <{n}> rows")
        return n

    job = tally.delay(7)
    assert job.result(timeout=GUARD) == 7  # the served worker runs it
    wait = WebDriverWait(browser, GUARD)
    browser.get(base + "/")
    chart = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "svg.chart")))
    columns = chart.find_elements(By.CSS_SELECTOR, "rect.good")
    assert columns and all(float(c.get_attribute("height") or 0) > 0 for c in columns)  # drawn, with data
    browser.get(base + "/queues/default")
    history = wait.until(expected_conditions.presence_of_element_located((By.ID, "history")))
    assert len(history.find_elements(By.CSS_SELECTOR, "svg.chart")) == 4
    assert history.find_elements(By.CSS_SELECTOR, "rect.good")
    browser.get(f"{base}/jobs/{job.id}")
    logs = wait.until(expected_conditions.presence_of_element_located((By.ID, "logs")))
    assert "counted <7> rows" in logs.text  # shown as text, escaped
