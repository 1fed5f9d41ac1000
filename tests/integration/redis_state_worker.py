"""A client process for the Redis state-store tests: scores its share of a file of transactions from several threads.

Usage: python redis_state_worker.py URL PREFIX EVENTS_JSON SHARE SHARES THREADS. It prints ``ready``, waits for
a line on stdin (so every process starts at once), scores rows SHARE::SHARES of the file from THREADS threads
through one RedisStateStore, and prints a JSON line with its counts of commits and conflicts.
"""

from __future__ import annotations

import json
import sys
import threading

from fraudstream.model.schema import validate
from fraudstream.services.stores.state.redis import RedisStateStore


def main() -> None:
    url, prefix, events, share, shares, threads = sys.argv[1:7]
    with open(events) as handle:
        rows = json.load(handle)[int(share)::int(shares)]
    txns = [validate(row) for row in rows]
    store = RedisStateStore(None, url=url, prefix=prefix, socket_timeout=30)
    n = int(threads)
    start = threading.Barrier(n + 1)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        start.wait()
        try:
            for txn in txns[k::n]:
                store.features(txn)
        except BaseException as error:  # reported below: a lost event must fail the test, not vanish with its thread
            errors.append(error)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for w in workers:
        w.start()
    print("ready", flush=True)
    sys.stdin.readline()
    start.wait()
    for w in workers:
        w.join()
    if errors:
        sys.exit(f"{len(errors)} worker threads failed: {errors[0]!r}")
    print(json.dumps({"commits": store.commits, "conflicts": store.conflicts, "events": len(txns)}), flush=True)


if __name__ == "__main__":
    main()
