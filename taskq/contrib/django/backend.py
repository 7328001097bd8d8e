"""TaskqBackend: Django's tasks framework on taskq.

    TASKS = {"default": {"BACKEND": "taskq.contrib.django.TaskqBackend", "QUEUES": ["default", "emails"],
                         "OPTIONS": {"url": "redis://localhost:6379/0", "namespace": "myproject"}}}

Each backend alias has one taskq app (`DjangoTaskQ`), built on first use from OPTIONS (what
taskq.TaskQ() takes, plus `retries`) and shared by every thread (Django makes a backend object
per thread). A Django task becomes a taskq task of that app, named by its module path, as
Django validates it (at decoration, so importing the tasks modules registers them in a worker
too). Enqueueing packs the call before anything is stored; with ENQUEUE_ON_COMMIT it is stored
when the current database transaction commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import threading
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from taskq.app import TaskQ
from taskq.broker.base import JobRecord, NewJob
from taskq.contrib.django.compat import (
    BaseTaskBackend,
    InvalidTask,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    normalize_json,
    task_enqueued,
)
from taskq.contrib.django.mapping import taskq_priority
from taskq.contrib.django.results import result_of
from taskq.contrib.django.runner import runner
from taskq.errors import ConfigError
from taskq.options import check_queue
from taskq.task import TaskBase, TaskCall

#: what taskq.TaskQ() takes, each a key OPTIONS may hold
TASKQ_OPTIONS = frozenset(inspect.signature(TaskQ).parameters)
#: OPTIONS keys the backend reads itself
BACKEND_OPTIONS = frozenset({"retries"})


class DjangoTaskQ(TaskQ):
    """The taskq app of one Django task backend: its queues are the backend's QUEUES as well as
    its tasks' (a worker consumes them all; a job is looked for in them all)."""

    def __init__(self, backend_queues: frozenset[str], retries: int, **options: Any) -> None:
        super().__init__(**options)
        self.backend_queues = backend_queues
        #: retries of each Django task's jobs (Django's own backends never retry)
        self.retries = retries
        #: the Django tasks registered, by module path (the taskq task's name)
        self.django_tasks: dict[str, Any] = {}
        #: whether the installed apps' tasks modules were imported to find a task (get_result)
        self.discovered = False

    @property
    def queues(self) -> list[str]:
        return sorted(set(super().queues) | self.backend_queues)


#: the app of each alias, with the settings it was built from (a change of settings builds anew)
_apps: dict[str, tuple[tuple[Any, ...], DjangoTaskQ]] = {}
_apps_lock = threading.Lock()


class TaskqBackend(BaseTaskBackend):  # type: ignore[misc]
    """A Django task backend that runs tasks as taskq jobs (`taskq worker taskq.contrib.django`)."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = dict(self.options)
        unknown = sorted(set(options) - TASKQ_OPTIONS - BACKEND_OPTIONS)
        if unknown:
            raise ImproperlyConfigured(f"TASKS[{alias!r}]['OPTIONS']: unknown option {unknown[0]!r} (it takes "
                                       f"{', '.join(sorted(TASKQ_OPTIONS | BACKEND_OPTIONS))})")
        retries = options.pop("retries", 0)
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ImproperlyConfigured(f"TASKS[{alias!r}]['OPTIONS']['retries'] must be an int >= 0, got {retries!r}")
        options.setdefault("name", f"taskq.contrib.django:{alias}")
        self.retries = retries
        #: store each job when the current transaction commits (django-tasks' ENQUEUE_ON_COMMIT)
        self.enqueue_on_commit = bool(params.get("ENQUEUE_ON_COMMIT", False))
        self._app_options = options

    @property
    def app(self) -> DjangoTaskQ:
        """This alias's taskq app, built on first use (no I/O until a job is stored or read)."""
        key = (frozenset(self.queues), self.retries, tuple(sorted(self._app_options.items(), key=lambda kv: kv[0])))
        carried: list[Any] = []
        with _apps_lock:
            built = _apps.get(self.alias)
            if built is None or built[0] != key:
                try:
                    app = DjangoTaskQ(frozenset(self.queues), self.retries, **self._app_options)
                except ConfigError as exc:
                    raise ImproperlyConfigured(f"TASKS[{self.alias!r}]['OPTIONS']: {exc}") from None
                # changed settings (override_settings): the tasks defined so far, which no import repeats
                carried = [] if built is None else list(built[1].django_tasks.values())
                built = _apps[self.alias] = (key, app)
        for task in carried:
            self._register(built[1], task)
        return built[1]

    def validate_task(self, task: Any) -> None:
        """Django's checks (InvalidTask), a queue name taskq can use, then the task registered."""
        super().validate_task(task)
        try:
            check_queue(task.queue_name)
        except ConfigError as exc:
            raise InvalidTask(str(exc)) from None
        self.taskq_task(task)

    def taskq_task(self, task: Any) -> TaskBase[Any, Any]:
        """The taskq task that runs the Django task `task`, registered under its module path."""
        return self._register(self.app, task)

    def _register(self, app: DjangoTaskQ, task: Any) -> TaskBase[Any, Any]:
        name = task.module_path
        registered = app.tasks.get(name)
        known = app.django_tasks.get(name)
        if registered is not None and known is not None and known.func is task.func:
            return registered
        app.tasks.pop(name, None)  # a tasks module imported anew replaces its tasks
        made: TaskBase[Any, Any] = app.task(name=name, queue=task.queue_name, retries=app.retries)(
            runner(task, self.alias, type(self)))
        app.django_tasks[name] = task
        return made

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        call = self._call(task)
        args, kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
        job = self.app._pack_call(call, tuple(args), kwargs)  # checked and packed before anything is stored
        result = self._new_result(task, job.id, args, kwargs)
        if self.enqueue_on_commit:
            transaction.on_commit(partial(self._store, call, job, result))
        else:
            self._store(call, job, result)
        return result

    async def aenqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        if self.enqueue_on_commit:  # on_commit belongs to the sync connection of the thread that commits
            return await sync_to_async(self.enqueue, thread_sensitive=True)(task, args, kwargs)
        self.validate_task(task)
        args, kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
        job = await self._call(task).delay_async(*args, **kwargs)
        result = self._new_result(task, job.id, args, kwargs)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        app = self.app
        holding = app.broker.queues_holding(result_id, app.known_queues()) if _is_id(result_id) else []
        record = app.broker.job(holding[0], result_id) if holding else None
        return self._result(result_id, record)

    async def aget_result(self, result_id: str) -> Any:
        if not self.queues:  # any queue may hold it: the known queues are a blocking read
            return await sync_to_async(self.get_result, thread_sensitive=True)(result_id)
        aio = self.app.broker.aio
        found = await asyncio.gather(*(aio.job(q, result_id) for q in sorted(self.queues))) if _is_id(result_id) else []
        return self._result(result_id, next((r for r in found if r is not None), None))

    def _result(self, result_id: str, record: JobRecord | None) -> Any:
        if record is None:
            raise TaskResultDoesNotExist(result_id)
        return result_of(record, self._django_task(record), self.alias)

    def _django_task(self, record: JobRecord) -> Any:
        """The Django task a job runs, by the name it was registered under; the installed apps'
        tasks modules are imported once to find one this process has not imported yet (never a
        module a job names)."""
        app = self.app
        name = record.task or ""
        if name not in app.django_tasks and not app.discovered:
            app.discovered = True
            discover_tasks()
        task = app.django_tasks.get(name)
        if task is None:
            raise TaskResultDoesNotExist(f"job {record.id} runs {name or 'an unknown task'!r}, which is not a "
                                         f"task of backend {self.alias!r} in the installed apps' tasks modules")
        return task

    def _call(self, task: Any) -> TaskCall[Any, Any]:
        """A call of the task with its queue, priority and due time."""
        return self.taskq_task(task).options(queue=task.queue_name, priority=taskq_priority(task.priority),
                                             at=_aware(task.run_after))

    def _store(self, call: TaskCall[Any, Any], job: NewJob, result: Any) -> None:
        self.app._submit_packed(call, job)
        task_enqueued.send(type(self), task_result=result)

    def _new_result(self, task: Any, job_id: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return TaskResult(task=task, id=job_id, status=TaskResultStatus.READY, enqueued_at=timezone.now(),
                          started_at=None, finished_at=None, last_attempted_at=None, args=args, kwargs=kwargs,
                          backend=self.alias, errors=[], worker_ids=[])


def discover_tasks() -> None:
    """Import the `tasks` module of every installed app that has one (as Django's admin finds
    `admin` modules): their Django tasks register with their backends as they are defined."""
    autodiscover_modules("tasks")


def _aware(run_after: dt.datetime | None) -> dt.datetime | None:
    """run_after as an aware time: a naive one (USE_TZ off; Django refuses it otherwise) is in
    Django's TIME_ZONE, not the process's."""
    if run_after is None or timezone.is_aware(run_after):
        return run_after
    return timezone.make_aware(run_after)  # type: ignore[no-any-return]


def _is_id(result_id: object) -> bool:
    return isinstance(result_id, str) and 0 < len(result_id) <= 200
