"""Creates keys in a SQLite store until it is killed, printing ``KEY REVISION`` for each
create as soon as the store has acknowledged it. Used by the kill -9 durability test.

Usage: python sqlite_kill_writer.py PATH PREFIX
"""

from __future__ import annotations

import asyncio
import os
import sys

from shoal.store.sqlite import SqliteStore

WRITERS = 8  # concurrent writers, so that group commit batches several writes


async def write_forever(store: SqliteStore, prefix: str) -> None:
    i = 0
    while True:
        key = f"{prefix}/{i:06d}"
        kv = await store.create(key, key.encode() * 20)
        # One write(2) per line: a line is in the pipe whole or not at all.
        os.write(1, f"{key} {kv.mod_revision}\n".encode())
        i += 1


async def main(path: str, prefix: str) -> None:
    store = await SqliteStore.open(path)
    async with asyncio.TaskGroup() as group:
        for n in range(WRITERS):
            group.create_task(write_forever(store, f"{prefix}/{n}"))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
