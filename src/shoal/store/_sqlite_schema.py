"""The SQLite file layout and the statements that use it.

Two tables hold the data. ``kv`` has the current value of every key; it answers get and
list-now with one index range. ``log`` has one row per revision, the change that revision
made, and answers watch history and list-at-a-past-revision. A row names its predecessor
(``prev_revision``, the key's previous log row) instead of repeating the old value, so every
value is stored once in the log; a DELETE row stores no value, its predecessor has it.

``kv`` is a rowid table with a separate unique index on ``key``, not a WITHOUT ROWID table
keyed by ``key``: a WITHOUT ROWID row is stored in an index b-tree, which keeps at most about
a quarter of a page inline, so every object over ~1 KB (most of them) would also write an
overflow page, measured at half the write rate.

There is deliberately no index on ``log.key``: each write would pay for a random insert into
it, and nothing hot needs it (history is read by revision; a past list is computed by undoing
the changes after it, see ``SqliteStore.list``).

``meta`` holds the compaction state. The global revision needs no row of its own: the log
keeps every row after the compaction point, so the revision is
``max(max(log.revision), compacted)``, and not writing a meta row on each commit saves one
page write per transaction.
"""

from __future__ import annotations

import sqlite3

from shoal.store._interface import StoreError

SCHEMA_VERSION = 1

PUT = 0
DELETE = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    id              INTEGER PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    value           BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    revision        INTEGER PRIMARY KEY,
    key             TEXT NOT NULL,
    type            INTEGER NOT NULL,   -- 0 PUT, 1 DELETE
    value           BLOB,               -- NULL for DELETE: the prev row has the last value
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER             -- the key's previous log row; NULL on create
);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

GET = "SELECT value, create_revision, mod_revision FROM kv WHERE key = ?"
_LIST = "SELECT key, value, create_revision, mod_revision FROM kv WHERE key >= ? {upper} ORDER BY key"
LIST_FROM = _LIST.format(upper="")
LIST_RANGE = _LIST.format(upper="AND key < ?")
INSERT_KV = "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?)"
UPDATE_KV = "UPDATE kv SET value = ?, mod_revision = ? WHERE key = ?"
DELETE_KV = "DELETE FROM kv WHERE key = ?"
INSERT_LOG = (
    "INSERT INTO log (revision, key, type, value, create_revision, prev_revision) VALUES (?, ?, ?, ?, ?, ?)"
)
GET_LOG = "SELECT value, create_revision FROM log WHERE revision = ?"

# The changes after a past revision; the first one per key tells what the key was then.
_CHANGES = "SELECT key, prev_revision FROM log WHERE revision > ? AND key >= ? {upper} ORDER BY revision"
CHANGES_FROM = _CHANGES.format(upper="")
CHANGES_RANGE = _CHANGES.format(upper="AND key < ?")

_HISTORY = """
SELECT l.revision, l.key, l.type, l.value, l.create_revision, l.prev_revision, p.value, p.create_revision
FROM log AS l LEFT JOIN log AS p ON p.revision = l.prev_revision
WHERE l.revision > ? AND l.revision <= ? AND l.key >= ? {upper}
ORDER BY l.revision LIMIT ?
"""
HISTORY_FROM = _HISTORY.format(upper="")
HISTORY_RANGE = _HISTORY.format(upper="AND l.key < ?")

# Compacting (lo, hi]: a row there supersedes its prev row, and a DELETE row in it describes
# a key that no read at or after the compaction point can see. Rows after the compaction
# point are never removed, which keeps max(log.revision) equal to the head revision.
COMPACT_PREVS = (
    "DELETE FROM log WHERE revision IN "
    "(SELECT prev_revision FROM log WHERE revision > ? AND revision <= ? AND prev_revision IS NOT NULL)"
)
COMPACT_DELETES = f"DELETE FROM log WHERE revision > ? AND revision <= ? AND type = {DELETE}"

GET_META = "SELECT value FROM meta WHERE name = ?"
SET_META = "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)"
MAX_REVISION = "SELECT max(revision) FROM log"


def connect(path: str) -> sqlite3.Connection:
    """Open ``path``, creating the schema if the file is new."""
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=64)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{path}: SQLite refused WAL mode (got {mode!r}); is it a network filesystem?")
        # A commit in WAL mode appends the transaction to the -wal file with write(2); with
        # synchronous=NORMAL it is not fsync'ed until a checkpoint. Once write(2) returns the
        # bytes are in the kernel's page cache, which outlives the process, so a commit that
        # returned survives kill -9 (and any crash of this process). It does not survive the
        # kernel or the machine dying before the page cache reaches the disk: the database
        # stays consistent then, but the last transactions can be lost. FULL would close
        # that gap at the price of an fsync per commit, around a hundred times slower here.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA journal_size_limit = 67108864")  # shrink a grown WAL after checkpoints
        conn.execute("PRAGMA cache_size = -32768")  # 32 MiB
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path} has store schema {version}; this shoal knows up to {SCHEMA_VERSION}")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


def connect_reader(path: str) -> sqlite3.Connection:
    """A second connection for reads that must see committed data only."""
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=64)
    conn.execute("PRAGMA query_only = ON")
    conn.execute("PRAGMA cache_size = -32768")
    return conn


def read_meta(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute(GET_META, (name,)).fetchone()
    return int(row[0]) if row else 0
