"""The worker's intake, one step at a time, without threads: prefetch into reserved, starts that
Redis may refuse (cancelled, lease lost), stale buffers, suspects alone, the max_jobs budget."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from newjobs import new_job

import taskq
from taskq.broker import Broker, Policy, open_broker
from taskq.broker.base import Depths, Outcome, Refill, Settlement, Status
from taskq.errors import BrokerUnavailable
from taskq.worker.intake import SUSPECT_LOST, Intake
from taskq.worker.rounds import IntakeLimits, task_limits

_names = itertools.count()
LEASE = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def broker() -> Broker:
    return open_broker(f"memory://intake-{next(_names)}", policy=Policy(lease_ms=int(LEASE * 1000)))


def intake(broker: Broker, clock: Clock, *, concurrency: int = 2, prefetch: int = 2, limits: IntakeLimits | None = None,
           unsettled: Callable[[], int] = lambda: 0) -> Intake:
    return Intake(broker, ["q"], "w", concurrency=concurrency, prefetch=prefetch, lease=LEASE, limits=limits,
                  unsettled=unsettled, clock=clock)


def jobs(broker: Broker, n: int) -> list[str]:
    ids = [f"j{i}" for i in range(n)]
    for job_id in ids:
        broker.enqueue(new_job("q", job_id, b"body"))
    return ids


def test_free_slots_get_running_jobs_and_the_rest_is_reserved(broker: Broker) -> None:
    jobs(broker, 5)
    step = intake(broker, Clock()).step()
    assert [d.id for d in step.run] == ["j0", "j1"] and all(d.running for d in step.run)
    assert broker.depths("q") == Depths(ready=1, reserved=2, running=2)
    assert broker.job("q", "j2").status is Status.RESERVED  # type: ignore[union-attr]
    assert not step.idle and not step.wait_slot


def test_a_freed_slot_starts_a_reserved_job_through_redis(broker: Broker) -> None:
    jobs(broker, 5)
    clock = Clock()
    it = intake(broker, clock)
    first = it.step()
    assert it.step().wait_slot  # both slots busy, buffer full: nothing to do
    it.ended(first.run[0])
    step = it.step()
    assert [d.id for d in step.run] == ["j2"]
    assert broker.job("q", "j2").status is Status.RUNNING  # type: ignore[union-attr]
    assert [d.id for d in it.buffer] == ["j3", "j4"]  # the buffer refilled in the same call


def test_a_cancelled_reserved_job_is_dropped_not_started(broker: Broker) -> None:
    jobs(broker, 4)
    it = intake(broker, Clock())
    first = it.step()
    broker.cancel("q", "j2")
    it.ended(first.run[0])
    step = it.step()
    assert "j2" not in [d.id for d in step.run] and [d.id for d in step.dropped] == ["j2"]
    assert broker.job("q", "j2").status is Status.CANCELLED  # type: ignore[union-attr]
    assert it.running == 1 + len(step.run)


def test_a_reserved_job_whose_lease_may_have_lapsed_is_never_started(broker: Broker) -> None:
    """A worker stopped (SIGSTOP, a long GC) past its lease must not start its stale buffer."""
    jobs(broker, 4)
    clock = Clock()
    it = intake(broker, clock)
    first = it.step()
    clock.now += LEASE  # the process was frozen: no renewal happened
    it.ended(first.run[0])
    it.ended(first.run[1])
    step = it.step()
    assert sorted(d.id for d in step.dropped) == ["j2", "j3"]
    assert [d.id for d in step.run] == []  # nothing else was ready; nothing stale started
    assert broker.job("q", "j2").status is Status.RESERVED  # type: ignore[union-attr]


def test_forget_drops_unstarted_jobs_whose_lease_was_lost(broker: Broker) -> None:
    jobs(broker, 4)
    it = intake(broker, Clock())
    it.step()
    lost = it.buffer[0]
    assert it.forget({lost.key}) == [lost] and lost not in it.buffer


def test_a_suspect_runs_alone_and_the_buffer_goes_back(broker: Broker) -> None:
    jobs(broker, 5)
    broker.client.hset("taskq:{q}:job:j0", "lost", SUSPECT_LOST)  # type: ignore[attr-defined]
    it = intake(broker, Clock(), concurrency=3, prefetch=3)
    step = it.step()
    assert "j0" not in [d.id for d in step.run] and [d.id for d in it.suspects] == ["j0"]
    assert it.step().wait_slot  # the suspect waits for the running jobs to end
    for d in step.run:
        it.ended(d)
    alone = it.step()
    assert [d.id for d in alone.run] == ["j0"] and it.alone is alone.run[0]
    assert [d.id for d in alone.give_back] == ["j4"] and not it.buffer  # prefetched: runs elsewhere meanwhile
    assert it.step().wait_slot  # nothing else starts while it runs
    it.ended(alone.run[0])
    assert not it.step().wait_slot


def test_a_job_that_lost_its_worker_once_runs_with_the_others(broker: Broker) -> None:
    jobs(broker, 3)
    broker.client.hset("taskq:{q}:job:j0", "lost", 1)  # type: ignore[attr-defined]
    step = intake(broker, Clock(), concurrency=3).step()
    assert [d.id for d in step.run] == ["j0", "j1", "j2"]


def test_the_budget_bounds_starts_and_prefetch(broker: Broker) -> None:
    jobs(broker, 10)
    it = intake(broker, Clock(), concurrency=2, prefetch=4, limits=IntakeLimits(budget=3))
    first = it.step()
    assert len(first.run) == 2 and len(it.buffer) == 1  # no prefetch past the third job
    for d in first.run:
        it.ended(d)
    assert not it.spent
    assert len(it.step().run) == 1 and it.spent


def test_an_empty_queue_makes_the_step_idle(broker: Broker) -> None:
    broker.enqueue(new_job("q", "later", b"x", delay_ms=60_000))
    step = intake(broker, Clock()).step()
    assert step.idle and step.run == [] and step.next_due is not None and 59 < step.next_due <= 60


def test_queues_are_served_in_turn_and_a_woken_queue_first(broker: Broker) -> None:
    for q in ("a", "b", "c"):
        for i in range(3):
            broker.enqueue(new_job(q, f"{q}{i}", b"body"))
    taker = Intake(broker, ["a", "b", "c"], "w", concurrency=1, prefetch=0, lease=LEASE, clock=Clock())
    order = []
    for _ in range(6):
        [d] = taker.step().run
        order.append(d.queue)
        taker.ended(d)
    assert order == ["a", "b", "c", "a", "b", "c"]  # none has precedence: each gets its share
    taker.woken = ["c"]
    [d] = taker.step().run
    assert d.queue == "c"  # the queue whose wake-up token came is fetched first


def test_a_capped_worker_waits_for_its_own_outcomes_before_fetching_again(broker: Broker) -> None:
    """With the cap reached, a fetch for a freed slot before its job's outcome is recorded would
    be refused (that job's lease still holds the slot): wait for the settle instead."""
    jobs(broker, 4)
    unsettled = [1]
    it = intake(broker, Clock(), prefetch=0, limits=IntakeLimits(caps={"q": 2}), unsettled=lambda: unsettled[0])
    first = it.step()
    assert len(first.run) == 2 and not it.capped
    it.ended(first.run[0])
    assert it.step().run == [] and it.capped  # the ended job's lease still holds its slot
    assert it.step().wait_slot  # its outcome is on the way: no second fetch in vain
    unsettled[0] = 0
    broker.settle("q", [Settlement(Outcome.OK, first.run[0].id, first.run[0].token, result=b"\xc0")])
    step = it.step()
    assert [d.id for d in step.run] == ["j2"] and not it.capped


def test_jobs_a_settle_leases_after_shutdown_began_are_handed_back_not_kept(broker: Broker) -> None:
    """Promise 5: a refill that lands once the intake has handed its unstarted jobs back must not
    be kept (nothing would run it until the lease lapsed): accept() returns it to give back."""
    jobs(broker, 3)
    it = intake(broker, Clock(), prefetch=0, limits=IntakeLimits(caps={"q": 1}))
    [first] = it.step().run
    it.unstarted()  # shutdown: the unstarted jobs go back
    refill = broker.settle_and_lease("q", [Settlement(Outcome.OK, first.id, first.token, result=b"\xc0")],
                                     Refill("w", 1, max_running=1))[1]
    assert len(refill) == 1 and it.accept(refill, 0.0) == refill and not it.armed
    assert it.refill("q", 1) is None  # and no settle asks for more


def test_the_limits_are_the_apps_and_fixed_at_construction() -> None:
    app = taskq.TaskQ("memory://intake-limits")
    app.queue("api", rate_limit="2/m", max_running=3)
    app.queue("plain")

    @app.task(max_running=1, rate_limit="5/s")
    def render() -> None: ...

    @app.task
    def free() -> None: ...

    limits = IntakeLimits.of(app, budget=7)
    assert limits.budget == 7 and dict(limits.rates) == {"api": (2, 60_000)} and dict(limits.caps) == {"api": 3}
    [own] = limits.tasks
    assert (own.rate, own.max_running) == ((5, 1000), 1) and limits.tasks == task_limits(app.tasks.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.budget = 1  # type: ignore[misc]


def test_what_the_worker_reads(broker: Broker) -> None:
    """running, idle, spent: the worker's read-only view of the intake."""
    jobs(broker, 2)
    it = intake(broker, Clock(), prefetch=0, limits=IntakeLimits(budget=2))
    assert it.running == 0 and not it.idle and not it.spent  # nothing fetched yet: not known to be empty
    step = it.step()
    assert it.running == 2 and it.spent and not it.idle
    for d in step.run:
        it.ended(d)
    assert it.running == 0
    empty = intake(broker, Clock())
    assert empty.step().idle and empty.idle


class FailingFetch:
    """A broker whose next fetch fails (a Redis outage in the middle of a round)."""

    def __init__(self, broker: Broker) -> None:
        self.broker, self.fail = broker, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.broker, name)

    def fetch(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail:
            self.fail = False
            raise BrokerUnavailable("down")
        return self.broker.fetch(*args, **kwargs)


def test_a_failed_fetch_puts_back_what_its_round_took(broker: Broker) -> None:
    jobs(broker, 4)
    flaky = FailingFetch(broker)
    it = Intake(flaky, ["q"], "w", concurrency=2, prefetch=2, lease=LEASE, clock=Clock())  # type: ignore[arg-type]
    first = it.step()
    it.ended(first.run[0])
    flaky.fail = True
    with pytest.raises(BrokerUnavailable):
        it.step()  # it took j2 from the buffer to start it
    assert it.running == 1 and [d.id for d in it.buffer] == ["j2", "j3"]
    assert [d.id for d in it.step().run] == ["j2"]


def test_close_wakes_a_waiting_intake_and_later_leases_go_back(broker: Broker) -> None:
    jobs(broker, 3)
    it = intake(broker, Clock(), prefetch=0)
    it.step()  # both slots busy
    stop = threading.Event()
    waiter = threading.Thread(target=it.wait_for_work, args=(stop, 600.0), daemon=True)
    waiter.start()
    stop.set()
    it.close()
    waiter.join(timeout=10)  # guards a hang only: without close() it waits its 600 s
    assert not waiter.is_alive()
    leased = broker.fetch("q", 1, 0, "w").deliveries
    assert it.accept(leased, 0.0) == leased and it.refill("q", 1) is None


def test_recorded_outcomes_wake_a_suspect_waiting_for_them(broker: Broker) -> None:
    jobs(broker, 3)
    broker.client.hset("taskq:{q}:job:j2", "lost", SUSPECT_LOST)  # type: ignore[attr-defined]
    unsettled = [1]
    it = intake(broker, Clock(), concurrency=2, prefetch=2, unsettled=lambda: unsettled[0])
    step = it.step()
    assert [d.id for d in it.suspects] == ["j2"]
    for d in step.run:
        it.ended(d)
    stop = threading.Event()
    waiter = threading.Thread(target=it.wait_for_work, args=(stop, 600.0), daemon=True)
    waiter.start()  # the suspect waits for the outcomes on their way to Redis
    unsettled[0] = 0
    it.recorded()
    waiter.join(timeout=10)  # guards a hang only: without recorded() it waits its 600 s
    assert not waiter.is_alive()
