"""The embedded default store: one SQLite file, owned by one process.

SQLite calls run directly on the event loop thread. In WAL mode with synchronous=NORMAL a
statement takes microseconds and a commit is one write(2): less than handing the call to a
thread would cost, and it keeps every store operation atomic with respect to the loop, which
the watch hand-over relies on (see ``_watch``).

Writes use group commit: each write runs its statements at once, inside a transaction that
collects every write made during the same turn of the event loop, and waits for the COMMIT
that ends it at the start of the next turn. No writer is answered before that COMMIT has
returned, so an acknowledged write is durable; many concurrent writers share one commit.

Reads use a second connection. In WAL mode it sees only committed transactions, so a read
never sees a write that is not durable yet, and reads do not cut a batch short: with 32
coroutines each doing get-then-update, that keeps batches whole and writes about 1.5 times
faster than committing the batch before each read.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import sqlite3
from collections.abc import Callable

from shoal.store import _sqlite_schema as sql
from shoal.store._filelock import FileLock
from shoal.store._interface import (
    Event,
    EventType,
    KeyExists,
    KeyValue,
    ListResult,
    StoreClosed,
    StoreError,
)
from shoal.store._rules import check_compactable, check_precondition, check_readable, prefix_end
from shoal.store._watch import DEFAULT_MAX_BACKLOG, DEFAULT_RING_SIZE, Watch, WatchHub

HISTORY_SCAN = 20_000  # revisions scanned per history read, to bound how long one blocks the loop
COMPACT_CHUNK = 5_000  # revisions compacted per transaction, for the same reason


class SqliteStore:
    """A store in one SQLite file (see ``_sqlite_schema`` for the layout)."""

    def __init__(
        self,
        path: str,
        conn: sqlite3.Connection,
        reader: sqlite3.Connection,
        lock: FileLock,
        *,
        ring_size: int,
        max_backlog: int,
    ) -> None:
        self.path = path
        self._conn = conn  # writes, and the reads that decide them
        self._reader = reader  # every other read: sees committed data only
        self._lock = lock
        self._compacted = sql.read_meta(conn, "compacted")
        self._compact_done = sql.read_meta(conn, "compact_done")  # log rows up to here are removed
        head = max(conn.execute(sql.MAX_REVISION).fetchone()[0] or 0, self._compacted)
        self._revision = head  # the last revision handed out, committed or not
        self._committed = head
        self._compact_lock = asyncio.Lock()
        self._closed = False
        self._in_batch = False
        self._batch: builtins.list[Event] = []
        self._waiters: builtins.list[asyncio.Future[None]] = []
        self._hub = WatchHub(self._history, head, ring_size=ring_size, max_backlog=max_backlog)
        self._hub.compacted = self._compacted

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        ring_size: int = DEFAULT_RING_SIZE,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
    ) -> SqliteStore:
        """Open or create the store at ``path``; raises StoreError if another process (or
        another store object in this one) has it open."""
        with contextlib.ExitStack() as undo:
            lock = FileLock.acquire(path + ".lock", what=path)
            undo.callback(lock.release)
            try:
                conn = sql.connect(path)
                undo.callback(conn.close)
                reader = sql.connect_reader(path)
                undo.callback(reader.close)
                store = cls(path, conn, reader, lock, ring_size=ring_size, max_backlog=max_backlog)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open store {path}: {exc}") from exc
            undo.pop_all()
        return store

    # -- reads -----------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        self._check_open()
        try:
            return self._current(self._reader, key)
        except sqlite3.Error as exc:
            raise self._failure("get", exc) from exc

    async def list(self, prefix: str, revision: int | None = None) -> ListResult:
        self._check_open()
        head = self._committed
        try:
            if revision is None or revision == head:
                return ListResult(self._list_now(prefix), head)
            check_readable(revision, self._compacted, head)
            return ListResult(self._list_at(prefix, revision), revision)
        except sqlite3.Error as exc:
            raise self._failure("list", exc) from exc

    def watch(self, prefix: str, after_revision: int) -> Watch:
        return self._hub.watch(prefix, after_revision)

    async def current_revision(self) -> int:
        self._check_open()
        return self._committed

    @staticmethod
    def _current(conn: sqlite3.Connection, key: str) -> KeyValue | None:
        row = conn.execute(sql.GET, (key,)).fetchone()
        return None if row is None else KeyValue(key, row[0], row[1], row[2])

    def _list_now(self, prefix: str) -> builtins.list[KeyValue]:
        end = prefix_end(prefix)
        if end is None:
            rows = self._reader.execute(sql.LIST_FROM, (prefix,))
        else:
            rows = self._reader.execute(sql.LIST_RANGE, (prefix, end))
        return [KeyValue(*row) for row in rows]

    def _list_at(self, prefix: str, revision: int) -> builtins.list[KeyValue]:
        """Undo the changes after ``revision``: the first change of a key after it names the
        log row that was the key's value then (or none, if that change created the key).
        This costs time in proportion to the writes since ``revision``, and spares every
        write the upkeep of an index on ``log.key``."""
        end = prefix_end(prefix)
        if end is None:
            changes = self._reader.execute(sql.CHANGES_FROM, (revision, prefix))
        else:
            changes = self._reader.execute(sql.CHANGES_RANGE, (revision, prefix, end))
        then: dict[str, int | None] = {}
        for key, prev_revision in changes:
            then.setdefault(key, prev_revision)
        state = {kv.key: kv for kv in self._list_now(prefix)}
        for key, prev_revision in then.items():
            if prev_revision is None:
                state.pop(key, None)
                continue
            row = self._reader.execute(sql.GET_LOG, (prev_revision,)).fetchone()
            if row is None:
                raise StoreError(f"{self.path}: log row {prev_revision} of {key} is missing", key)
            state[key] = KeyValue(key, row[0], row[1], prev_revision)
        return [state[k] for k in sorted(state)]

    def _history(self, prefix: str, after: int, upto: int, limit: int) -> tuple[builtins.list[Event], int]:
        stop = min(upto, after + HISTORY_SCAN)
        end = prefix_end(prefix)
        try:
            if end is None:
                rows = self._reader.execute(sql.HISTORY_FROM, (after, stop, prefix, limit)).fetchall()
            else:
                rows = self._reader.execute(sql.HISTORY_RANGE, (after, stop, prefix, end, limit)).fetchall()
            events = [self._event(*row) for row in rows]
        except sqlite3.Error as exc:
            raise self._failure("watch", exc) from exc
        return events, (events[-1].revision if len(events) == limit else stop)

    def _event(
        self,
        revision: int,
        key: str,
        kind: int,
        value: bytes | None,
        create_revision: int,
        prev_revision: int | None,
        prev_value: bytes | None,
        prev_create_revision: int | None,
    ) -> Event:
        prev = None
        if prev_revision is not None:
            if prev_value is None or prev_create_revision is None:
                raise StoreError(f"{self.path}: log row {prev_revision}, before {revision}, is missing", key)
            prev = KeyValue(key, prev_value, prev_create_revision, prev_revision)
        if kind == sql.DELETE:
            if prev is None:
                raise StoreError(f"{self.path}: delete at revision {revision} has no previous value", key)
            return Event(EventType.DELETE, KeyValue(key, prev.value, create_revision, revision), prev)
        if value is None:
            raise StoreError(f"{self.path}: log row {revision} has no value", key)
        return Event(EventType.PUT, KeyValue(key, value, create_revision, revision), prev)

    # -- writes ----------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._write(lambda: self._create(key, value))

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> KeyValue:
        return await self._write(lambda: self._update(key, value, expected_revision))

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        return await self._write(lambda: self._delete(key, expected_revision))

    async def _write(self, apply: Callable[[], Event]) -> KeyValue:
        self._check_open()
        try:
            if not self._in_batch:
                self._conn.execute("BEGIN")
                self._in_batch = True
                asyncio.get_running_loop().call_soon(self._commit)
            event = apply()
        except StoreError:
            if self._batch:  # the refusal was judged on writes that are not durable yet
                await self._committed_batch()
            raise
        except sqlite3.Error as exc:
            raise self._abort(exc) from exc
        self._revision = event.revision
        self._batch.append(event)
        await self._committed_batch()
        return event.kv

    def _create(self, key: str, value: bytes) -> Event:
        revision = self._revision + 1
        try:
            self._conn.execute(sql.INSERT_KV, (key, value, revision, revision))
        except sqlite3.IntegrityError as exc:  # SQLite undoes just this statement, not the batch
            if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
                raise KeyExists(f"{key}: already exists", key) from None
            raise self._failure("create", exc) from exc
        self._conn.execute(sql.INSERT_LOG, (revision, key, sql.PUT, value, revision, None))
        return Event(EventType.PUT, KeyValue(key, value, revision, revision), None)

    def _update(self, key: str, value: bytes, expected_revision: int | None) -> Event:
        prev = check_precondition(key, self._current(self._conn, key), expected_revision)
        revision = self._revision + 1
        self._conn.execute(sql.UPDATE_KV, (value, revision, key))
        self._conn.execute(
            sql.INSERT_LOG, (revision, key, sql.PUT, value, prev.create_revision, prev.mod_revision)
        )
        return Event(EventType.PUT, KeyValue(key, value, prev.create_revision, revision), prev)

    def _delete(self, key: str, expected_revision: int | None) -> Event:
        prev = check_precondition(key, self._current(self._conn, key), expected_revision)
        revision = self._revision + 1
        self._conn.execute(sql.DELETE_KV, (key,))
        self._conn.execute(
            sql.INSERT_LOG, (revision, key, sql.DELETE, None, prev.create_revision, prev.mod_revision)
        )
        return Event(EventType.DELETE, KeyValue(key, prev.value, prev.create_revision, revision), prev)

    async def _committed_batch(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _commit(self) -> None:
        """End the open batch, if any: commit, publish its events, answer its writers."""
        if not self._in_batch:
            return
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._abort(exc)
            return
        self._in_batch = False
        events, self._batch = self._batch, []
        waiters, self._waiters = self._waiters, []
        self._committed = self._revision
        self._hub.publish(events)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _abort(self, exc: sqlite3.Error) -> StoreError:
        """Roll the whole batch back and fail its writers: after an SQLite error mid-batch
        nothing short of that tells which of its writes are intact."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")
        self._in_batch = False
        self._batch = []
        self._revision = self._committed
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(self._failure("write (rolled back)", exc))
        return self._failure("write (rolled back)", exc)

    # -- compaction and lifetime -----------------------------------------------------------

    async def compact(self, revision: int) -> None:
        self._check_open()
        async with self._compact_lock:
            self._check_open()
            self._commit()
            if revision > self._compacted:
                check_compactable(revision, self._committed)
                self._transaction(lambda: self._conn.execute(sql.SET_META, ("compacted", revision)))
                self._compacted = self._hub.compacted = revision
            # Also finishes the work of a compaction that an earlier process did not complete.
            while self._compact_done < self._compacted and not self._closed:
                low, high = self._compact_done, min(self._compact_done + COMPACT_CHUNK, self._compacted)
                self._transaction(functools.partial(self._remove_compacted, low, high))
                self._compact_done = high
                await asyncio.sleep(0)

    def _remove_compacted(self, low: int, high: int) -> None:
        self._conn.execute(sql.COMPACT_PREVS, (low, high))
        self._conn.execute(sql.COMPACT_DELETES, (low, high))
        self._conn.execute(sql.SET_META, ("compact_done", high))

    def _transaction(self, body: Callable[[], object]) -> None:
        """Run ``body`` in a transaction of its own, outside the group-commit batch."""
        self._commit()
        try:
            self._conn.execute("BEGIN")
            body()
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise self._failure("compact", exc) from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._commit()
        self._closed = True
        self._hub.close()
        self._reader.close()
        self._conn.close()
        self._lock.release()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"the store {self.path} was closed")

    def _failure(self, what: str, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"{self.path}: {what} failed: {exc}")
