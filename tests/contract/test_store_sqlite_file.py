"""What the SQLite backend promises beyond the shared contract: the file outlives the
process (even ``kill -9``), and only one process owns it at a time."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from shoal.store import Compacted, StoreError, open_store
from shoal.store.sqlite import SqliteStore

WRITER = Path(__file__).with_name("sqlite_kill_writer.py")
ACKS_PER_ROUND = 1000


async def test_reopening_gives_the_same_data_and_revision(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    store = await SqliteStore.open(path)
    await store.create("/k/1", b"one")
    two = await store.create("/k/2", b"two")
    await store.update("/k/1", b"one again")
    await store.delete("/k/2")
    await store.create("/k/3", b"three")
    await store.compact(two.mod_revision)
    before = await store.list("/k/")
    history = await store.list("/k/", revision=two.mod_revision)
    await store.close()

    store = await SqliteStore.open(path)
    try:
        assert await store.list("/k/") == before
        assert await store.current_revision() == before.revision
        assert await store.list("/k/", revision=two.mod_revision) == history
        with pytest.raises(Compacted):
            await store.list("/k/", revision=two.mod_revision - 1)
        watch = store.watch("/k/", two.mod_revision)  # history from the file: the ring is empty
        events = [await anext(watch) for _ in range(3)]
        assert [e.revision for e in events] == list(range(two.mod_revision + 1, before.revision + 1))
        created = await store.create("/k/4", b"four")
        assert created.mod_revision == before.revision + 1
        assert (await anext(watch)).kv == created
    finally:
        await store.close()


async def test_a_revision_of_deletes_compacted_away_is_not_reused(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    store = await SqliteStore.open(path)
    await store.create("/k", b"v")
    deleted = await store.delete("/k")
    await store.compact(deleted.mod_revision)  # removes every log row
    await store.close()
    store = await SqliteStore.open(path)
    try:
        assert await store.current_revision() == deleted.mod_revision
        assert (await store.create("/k", b"v")).mod_revision == deleted.mod_revision + 1
    finally:
        await store.close()


async def test_compaction_removes_the_log_rows_no_one_can_read(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    store = await SqliteStore.open(path)
    try:
        for i in range(10):
            await store.create(f"/k/{i}", b"v")
        for i in range(90):
            await store.update(f"/k/{i % 10}", b"w")
        await store.delete("/k/0")
        await store.compact(await store.current_revision())
        with sqlite3.connect(path) as peek:
            rows = peek.execute("SELECT count(*) FROM log").fetchone()[0]
        assert rows == 9  # the current value of each key still present
    finally:
        await store.close()


async def test_an_interrupted_compaction_is_finished_by_the_next_one(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    store = await SqliteStore.open(path)
    await store.create("/k", b"0")
    for i in range(1, 50):
        await store.update("/k", b"%d" % i)
    await store.close()
    # What a crash leaves after compaction recorded its point but removed no rows yet.
    with sqlite3.connect(path) as edit:
        edit.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('compacted', 40)")

    store = await SqliteStore.open(path)
    try:
        with pytest.raises(Compacted):
            await store.list("/k", revision=39)
        await store.compact(40)  # no new point, but the leftover rows go
        with sqlite3.connect(path) as peek:
            assert peek.execute("SELECT min(revision), count(*) FROM log").fetchone() == (40, 11)
        assert [kv.value for kv in (await store.list("/k", revision=40)).items] == [b"39"]
    finally:
        await store.close()


async def test_a_second_opener_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    store = await open_store(f"sqlite://{path}")
    with pytest.raises(StoreError, match="already open"):
        await SqliteStore.open(path)
    await store.close()
    again = await SqliteStore.open(path)
    await again.close()


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    acknowledged: dict[str, int] = {}

    def record(line: bytes) -> None:
        key, revision = line.decode().split()
        acknowledged[key] = int(revision)

    for round_ in range(3):
        writer = await asyncio.create_subprocess_exec(
            sys.executable, str(WRITER), path, f"/round{round_}", stdout=asyncio.subprocess.PIPE
        )
        assert writer.stdout is not None
        try:
            async with asyncio.timeout(10):
                for _ in range(ACKS_PER_ROUND):
                    line = await writer.stdout.readline()
                    assert line.endswith(b"\n"), "the writer stopped before it was killed"
                    record(line)
        finally:
            writer.send_signal(signal.SIGKILL)
            await writer.wait()
        assert writer.returncode == -signal.SIGKILL
        for line in (await writer.stdout.read()).splitlines():  # acknowledged before it died
            record(line)

        store = await SqliteStore.open(path)  # the dead writer's lock went with it
        try:
            for key, revision in acknowledged.items():
                kv = await store.get(key)
                assert kv is not None, f"acknowledged {key} at {revision} was lost"
                assert kv.mod_revision == revision
            with sqlite3.connect(path) as check:
                assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            head = await store.current_revision()
            assert head >= max(acknowledged.values())
            after = await store.create(f"/after/{round_}", b"v")
            assert after.mod_revision == head + 1
        finally:
            await store.close()
    assert len(acknowledged) >= 3 * ACKS_PER_ROUND
