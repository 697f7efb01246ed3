"""Store benchmark: raw writes per second of each backend, without the API on top.

Prints one JSON document. Each measurement runs twice, interleaved (memory, sqlite, memory,
sqlite), because these machines are noisy.

    .venv/bin/python bench/store.py [--quick]

- creates_seq: one coroutine creating keys back to back;
- creates_c32: 32 coroutines creating keys concurrently (sqlite groups the writes of one
  event-loop turn into one transaction);
- cas_updates_c32: 32 coroutines each doing get, then compare-and-swap update, of its own key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any

from shoal.store import Store, open_store

VALUE = b"x" * 1024


async def creates(store: Store, total: int, concurrency: int) -> float:
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await store.create(f"/bench/creates/{concurrency}/{i:08d}", VALUE)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for _ in range(concurrency):
            tasks.create_task(worker())
    return total / (time.perf_counter() - start)


async def cas_updates(store: Store, rounds: int, concurrency: int) -> float:
    keys = [f"/bench/cas/{i}" for i in range(concurrency)]
    for key in keys:
        await store.create(key, VALUE)

    async def worker(key: str) -> None:
        for _ in range(rounds):
            current = await store.get(key)
            assert current is not None
            await store.update(key, VALUE, current.mod_revision)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for key in keys:
            tasks.create_task(worker(key))
    return rounds * concurrency / (time.perf_counter() - start)


async def measure(url: str, total: int) -> dict[str, Any]:
    store = await open_store(url)
    try:
        return {
            "creates_seq_per_s": round(await creates(store, total, 1)),
            "creates_c32_per_s": round(await creates(store, total, 32)),
            "cas_updates_c32_per_s": round(await cas_updates(store, total // 32, 32)),
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    args = parser.parse_args()
    total = 5_000 if args.quick else 40_000
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "value_bytes": len(VALUE),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for r in (1, 2):
            for backend in ("memory", "sqlite"):
                url = "memory://" if backend == "memory" else f"sqlite:///{tmp}/store-{r}.db"
                results[f"round_{r}_{backend}"] = asyncio.run(measure(url, total))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
