"""The read model of dead letters for the dashboard and its API: filtered (queue, task, error
text), newest first, a page at a time; and replay or purge of exactly what a filter (or a list of
ids) matches.

Filtering by task or error text has to read each dead job's record (BATCH at a time): the
dead-letter list holds ids and times only. Without those filters a page reads its own records only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from taskq.broker.base import Entry, JobRecord
from taskq.errors import TaskqError
from taskq.info import JobInfo
from taskq.views import BATCH, DeadJob, Source, check_queue, dead_record, first_line, purge, replay, stamp

#: most dead jobs one page (or API call) lists
MAX_PAGE = 500


@dataclasses.dataclass(frozen=True, slots=True)
class DeadFilter:
    """Which dead jobs: of one queue (None: every known queue), whose task name contains `task`,
    whose reason or error contains `text` (both ignoring case; empty: any)."""

    queue: str | None = None
    task: str = ""
    text: str = ""

    @property
    def reads_records(self) -> bool:
        return bool(self.task or self.text)

    def matches(self, info: JobInfo) -> bool:
        if self.task and self.task.lower() not in (info.task or "").lower():
            return False
        wanted = self.text.lower()
        return not wanted or any(wanted in (s or "").lower() for s in (info.reason, info.error))

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters (what is set only)."""
        pairs = (("queue", self.queue or ""), ("task", self.task), ("q", self.text))
        return {k: v for k, v in pairs if v}


#: a dead-letter entry and the queue holding it
Dead = tuple[str, Entry]


def _entries(app: Source, f: DeadFilter) -> list[Dead]:
    """Every dead-letter entry of the filter's queues, newest first."""
    out = [(q, e) for q in check_queue(app, f.queue) for e in app.broker.dead(q, None)]
    return sorted(out, key=lambda d: -d[1].ms)


def _records(app: Source, entries: Sequence[Dead]) -> Iterator[tuple[Entry, JobRecord]]:
    """The records of these entries (those that still have one), read BATCH at a time per queue."""
    for start in range(0, len(entries), BATCH):
        chunk = entries[start:start + BATCH]
        by_queue: dict[str, list[str]] = {}
        for q, e in chunk:
            by_queue.setdefault(q, []).append(e.id)
        found = {(q, job_id): record for q, ids in by_queue.items()
                 for job_id, record in zip(ids, app.broker.jobs(q, ids), strict=True) if record is not None}
        for q, e in chunk:
            if (q, e.id) in found:
                yield e, found[(q, e.id)]


def matching(app: Source, f: DeadFilter) -> Iterator[tuple[Entry, JobRecord]]:
    """The dead jobs the filter matches, newest first."""
    for entry, record in _records(app, _entries(app, f)):
        if not f.reads_records or f.matches(JobInfo.of(record, app.max_message_bytes)):
            yield entry, record


def _row(app: Source, entry: Entry, record: JobRecord) -> DeadJob:
    info = JobInfo.of(record, app.max_message_bytes)
    return DeadJob(record.id, record.queue, info.task, info.attempt, stamp(entry.ms),
                   first_line(info.reason or info.error))


def dead_page(app: Source, f: DeadFilter, offset: int = 0, limit: int = 50) -> dict[str, Any]:
    """One page of the dead jobs the filter matches: `jobs` (DeadJob fields), `total` matching,
    `offset`, `limit`."""
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise TaskqError(f"offset must be >= 0 and limit 1..{MAX_PAGE}")
    if f.reads_records:
        hits = list(matching(app, f))
        total, page = len(hits), hits[offset:offset + limit]
    else:  # the entries say how many; read the page's records only
        entries = _entries(app, f)
        total, page = len(entries), list(_records(app, entries[offset:offset + limit]))
    return {"jobs": [_row(app, e, r).as_dict() for e, r in page], "total": total, "offset": offset, "limit": limit}


def _chosen(app: Source, f: DeadFilter, ids: Sequence[str] | None) -> Iterator[JobRecord]:
    """The records an action works on: the ids given (each must be dead, in the filter's queue
    if it names one), else every dead job the filter matches."""
    if ids is None:
        for _, record in matching(app, f):
            yield record
        return
    for job_id in ids:
        yield dead_record(app, job_id, f.queue)


def replay_matching(app: Source, f: DeadFilter, ids: Sequence[str] | None = None) -> tuple[int, list[str]]:
    """Replay the chosen dead jobs: how many went back, and why others did not."""
    done, skipped = 0, []
    for record in list(_chosen(app, f, ids)):
        try:
            done += replay(app, record)
        except TaskqError as exc:
            skipped.append(f"{record.id}: {exc}")
    return done, skipped


def purge_matching(app: Source, f: DeadFilter, ids: Sequence[str] | None = None) -> int:
    """Delete the chosen dead jobs for good; how many."""
    return sum(purge(app, record) for record in list(_chosen(app, f, ids)))
