"""Where one `.delay()` spends its time: the round trip floor (PING), the whole call, the Python
part alone, and the script's time inside Redis (INFO commandstats). On a fresh redis-server.

    .venv/bin/python bench/enqueue_parts.py [N]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import redis
from _redis import redis_url

import taskq


def per_call(call: Callable[[], object], n: int) -> float:
    call()
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with redis_url() as url:
        app = taskq.TaskQ(url)

        @app.task
        def noop() -> None: ...

        client = redis.Redis.from_url(url)
        client.config_resetstat()
        ping = per_call(client.ping, n)
        delay = per_call(noop.delay, n)
        python = per_call(lambda: (noop.check_args((), {}), noop.message(
            "0" * 32, (), {}, queue="default", priority=0, enqueued_at=time.time())), n)
        script = client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]
        print(f"PING round trip   {ping * 1e6:6.1f} us")
        print(f".delay()          {delay * 1e6:6.1f} us  ({1 / delay:,.0f}/s)")
        print(f"  in Redis        {script:6.1f} us  (enqueue.lua, INFO commandstats)")
        print(f"  in Python       {python * 1e6:6.1f} us  (signature check, msgpack, id)")


if __name__ == "__main__":
    main()
