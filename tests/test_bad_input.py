"""Promise 3: a user mistake raises at once or dead-letters with a reason; nothing is lost."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

import msgpack
import pytest
from newjobs import new_job

import taskq
from taskq.broker.base import Depths
from taskq.broker.keys import Keys
from taskq.message import Message, pack
from taskq.testing import drain


def keys_in(app: taskq.TaskQ) -> list[bytes]:
    return sorted(app.broker.client.keys("*"))


@pytest.mark.parametrize("bad", [object(), socket.socket, 2**70, 1j])
def test_unserializable_argument_raises_at_delay_and_writes_nothing(app: taskq.TaskQ, bad: Any) -> None:
    @app.task
    def take(x: object) -> None: ...

    take.delay(1)  # registers the queue, so the key set below is stable
    before = keys_in(app)
    with pytest.raises(taskq.SerializationError, match="task 'take': arguments cannot be sent as msgpack"):
        take.delay(bad)
    assert keys_in(app) == before


def test_arguments_that_do_not_fit_the_signature(app: taskq.TaskQ) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(taskq.EnqueueError, match="missing a required argument: 'y'"):
        add.delay(1)  # type: ignore[call-arg]
    with pytest.raises(taskq.EnqueueError, match="unexpected keyword argument 'z'"):
        add.delay(1, 2, z=3)  # type: ignore[call-arg]
    assert app.broker.depths("default").ready == 0


@pytest.mark.parametrize(("args", "kwargs", "says"), [
    ((1,), {"z": 2}, "task 'add': missing a required argument: 'y'; got an unexpected keyword argument 'z'$"),
    ((1, 2, 3), {"z": 2, "w": 3}, "too many positional arguments; got unexpected keyword arguments 'z', 'w'$"),
    ((1, 2), {"z": 3}, "task 'add': got an unexpected keyword argument 'z'$"),
])
def test_every_misfit_of_a_call_is_named_in_one_line(app: taskq.TaskQ, args: tuple[Any, ...],
                                                     kwargs: dict[str, Any], says: str) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(taskq.EnqueueError, match=says):
        add.delay(*args, **kwargs)


def test_an_unsendable_argument_is_named_by_its_parameter(app: taskq.TaskQ) -> None:
    @app.task
    def store(payload: object, *more: object, when: object = None) -> None: ...

    with pytest.raises(taskq.SerializationError, match=r": argument 'payload' \(an object\) is not a type"):
        store.delay(object())
    with pytest.raises(taskq.SerializationError, match=r": argument 2 \(an object\) is not a type"):
        store.delay(1, object())  # one of *more: its position
    with pytest.raises(taskq.SerializationError, match=r": keyword argument 'when' \(an object\)"):
        store.delay(1, when=object())


def test_oversized_message_raises_at_delay(url: str) -> None:
    app = taskq.TaskQ(url, max_message_bytes=1024)

    @app.task
    def take(blob: bytes) -> None: ...

    with pytest.raises(taskq.MessageTooLarge, match="over the 1024-byte limit"):
        take.delay(b"x" * 2000)
    assert app.broker.depths("default").ready == 0


@pytest.mark.parametrize("options", [
    {"queue": ""}, {"queue": "a{b}"}, {"queue": "a:b"}, {"priority": 10}, {"priority": -1},
    {"retries": -1}, {"timeout": 0},
])
def test_bad_task_options_fail_at_decoration(options: dict[str, Any]) -> None:
    app = taskq.TaskQ("memory://options")
    with pytest.raises(taskq.ConfigError):
        app.task(**options)


def test_misspelt_option_fails_in_one_line_naming_the_nearest() -> None:
    app = taskq.TaskQ("memory://options")
    with pytest.raises(taskq.ConfigError,
                       match=r"^app.task\(\): unknown option 'retires' \(did you mean 'retries'\?\)$"):
        app.task(retires=3)  # type: ignore[call-overload]
    with pytest.raises(taskq.ConfigError, match=r"^app.queue\(\): unknown option 'fiar' \(did you mean 'fair'\?\)$"):
        app.queue("q", fiar=True)  # type: ignore[call-arg]

    @app.task
    def noop() -> None: ...

    with pytest.raises(taskq.ConfigError, match=r"^task.options\(\): unknown option 'partiton' \(did you mean"):
        noop.options(partiton="a")  # type: ignore[call-arg]
    with pytest.raises(taskq.ConfigError, match=r"^Partition.limit\(\): unknown option 'max'"):
        app.partition("q", "a").limit(max=3)  # type: ignore[call-arg]


@pytest.mark.parametrize("options", [{"delay": -1}, {"priority": 11}, {"queue": "x y"}, {"key": ""},
                                     {"at": "tomorrow"}])
def test_bad_call_options(options: dict[str, Any]) -> None:
    app = taskq.TaskQ("memory://options")

    @app.task
    def noop() -> None: ...

    with pytest.raises(taskq.ConfigError):
        noop.options(**options)


@pytest.mark.parametrize(("options", "says"), [
    ({"key_ttl": 60}, "key_ttl= needs key="),
    ({"key": "k", "key_ttl": -1}, "key_ttl must be seconds > 0 or a timedelta"),
    ({"key": "k", "key_ttl": 0}, "key_ttl must be seconds > 0"),
    ({"key": "k", "key_ttl": "1m"}, "key_ttl must be seconds > 0"),
    ({"debounce": 5}, "debounce= needs key="),
    ({"key": "k", "debounce": 0}, "debounce must be seconds > 0"),
    ({"key": "k", "debounce": dt.timedelta(seconds=-1)}, "debounce must be seconds > 0"),
    ({"key": "k", "debounce": 5, "debounce_max": 4}, "debounce_max must come with debounce= and be >= it"),
    ({"key": "k", "debounce_max": 60}, "debounce_max must come with debounce="),
    ({"key": "k", "debounce": 5, "delay": 10}, "give debounce= or delay=/at=, not both"),
    ({"key": "k", "debounce": True}, "debounce must be seconds > 0"),
])
def test_bad_dedup_windows_and_debounce_fail_in_one_line_and_store_nothing(options: dict[str, Any],
                                                                          says: str) -> None:
    app = taskq.TaskQ("memory://options-windows")

    @app.task
    def noop() -> None: ...

    with pytest.raises(taskq.ConfigError, match=says) as caught:
        noop.options(**options).delay()
    assert "\n" not in str(caught.value)
    assert app.broker.client.keys("*") == []


def test_bad_reschedule_and_priority_fail_in_one_line() -> None:
    app = taskq.TaskQ("memory://options-moves")
    job = app.job("nope", "default")
    for call, says in [(lambda: job.reschedule(), "reschedule\\(\\) takes delay= or at="),
                       (lambda: job.reschedule(delay=1, at=dt.datetime.now(dt.UTC)), "takes delay= or at="),
                       (lambda: job.reschedule(delay=-1), "delay must be >= 0"),
                       (lambda: job.set_priority(10), "priority must be an int from 0 to 9")]:
        with pytest.raises(taskq.ConfigError, match=says):
            call()
    assert app.broker.client.keys("*") == []


def test_duplicate_task_name_is_refused() -> None:
    app = taskq.TaskQ("memory://dupes")

    @app.task(name="same")
    def one() -> None: ...

    with pytest.raises(taskq.ConfigError, match="already registered"):
        @app.task(name="same")
        def two() -> None: ...


def test_bad_url_scheme() -> None:
    with pytest.raises(taskq.ConfigError, match="unsupported broker URL"):
        _ = taskq.TaskQ("http://localhost").broker


def test_unreachable_redis_raises_broker_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = taskq.TaskQ(f"redis://127.0.0.1:{port}/0")

    @app.task
    def noop() -> None: ...

    with pytest.raises(taskq.BrokerUnavailable, match=f"cannot reach Redis at redis://127.0.0.1:{port}/0"):
        noop.delay()


def _raw_enqueue(app: taskq.TaskQ, job_id: str, body: bytes) -> None:
    app.broker.enqueue(new_job("default", job_id, body))


def test_garbage_messages_go_to_dead_letters_and_the_worker_keeps_going(app: taskq.TaskQ) -> None:
    @app.task
    def ok() -> str:
        return "fine"

    unknown = Message(id="u1", task="os.system", queue="default", args=("rm -rf /",))
    _raw_enqueue(app, "u1", pack(unknown))
    _raw_enqueue(app, "g1", b"\xc1\xff not msgpack")
    _raw_enqueue(app, "g2", msgpack.packb([1, 2, 3]))
    _raw_enqueue(app, "g3", msgpack.packb({"v": 999}))
    app.broker.client.rpush(Keys().queue("default").ready(), b"random bytes with no job record")
    job = ok.delay()
    drain(app)
    assert job.result(timeout=5) == "fine"
    reasons = {}
    for entry in app.broker.dead("default"):
        record = app.broker.job("default", entry.id)
        assert record is not None and record.reason is not None
        reasons[entry.id] = record.reason
    assert reasons["u1"].startswith("unknown_task: no task named 'os.system'")
    assert reasons["g1"].startswith("decode_error")
    assert reasons["g2"].startswith("decode_error")
    assert reasons["g3"].startswith("bad_version")
    raw = [r for k, r in reasons.items() if k.startswith("raw-")]
    assert raw == ["unknown_job: ready entry with no job record"]
    assert app.broker.depths("default") == Depths(ready=0, scheduled=0, running=0, dead=5)


def test_oversized_message_in_redis_is_dead_lettered(url: str) -> None:
    app = taskq.TaskQ(url, max_message_bytes=2048)

    @app.task
    def take(blob: bytes) -> None: ...

    body = pack(Message(id="big", task="take", queue="default", args=(b"x" * 4096,)), limit=10_000)
    _raw_enqueue(app, "big", body)
    drain(app)
    record = app.broker.job("default", "big")
    assert record is not None and record.reason is not None and record.reason.startswith("too_large")


def test_unserializable_result_dead_letters(app: taskq.TaskQ) -> None:
    @app.task
    def bad_result() -> object:
        return object()

    job = bad_result.delay()
    drain(app)
    with pytest.raises(taskq.TaskFailed, match="result_unserializable"):
        job.result(timeout=5)


def test_a_job_of_an_unknown_task_is_named_after_its_message(app: taskq.TaskQ) -> None:
    """Its log line and its `dead` hook name the task the message asked for (it decoded)."""
    seen: list[taskq.JobEvent] = []
    app.on("dead")(seen.append)
    _raw_enqueue(app, "gone", pack(Message(id="gone", task="billing.renamed_task", queue="default", attempt=2)))
    drain(app)
    [event] = seen
    assert (event.job_id, event.task, event.attempt) == ("gone", "billing.renamed_task", 2)
    assert event.reason is not None and event.reason.startswith("unknown_task")


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10", None])
def test_a_bad_keep_args_is_one_line(bad: object) -> None:
    app = taskq.TaskQ("memory://bad-keep-args")
    with pytest.raises(taskq.ConfigError, match=r"^queue 'q': keep_args must be an int >= 0, got .*$"):
        app.queue("q", keep_args=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, "no", None])
def test_a_bad_keep_logs_is_one_line(bad: object) -> None:
    app = taskq.TaskQ("memory://bad-keep-logs")
    with pytest.raises(taskq.ConfigError, match=r"^keep_logs must be True or False, got .*$"):
        app.task(keep_logs=bad)(lambda: None)  # type: ignore[call-overload]
