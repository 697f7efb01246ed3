"""A backup into a fresh data dir and an empty store: all of it, or recognisably nothing.

The order, and why:

1. Refuse a data dir that holds a cluster (``state.db``, ``pki/ca.key``, a keyring): restoring
   over it would mix two clusters. A leftover staging folder of a restore cut short is ours and
   is removed first.
2. Stage: the PKI and keyring files go to ``D/.restore-incomplete/`` (with a ``RESTORING``
   note saying from which backup into which store), keys 0600, folders 0700.
3. Load: the target store (by default a new sqlite file *inside the staging folder*) must be
   empty, naming its URL and the first key otherwise; then every key is created with the raw
   value from the backup, below encryption (Secrets stay ciphertext under the restored
   keyring), in the order of their old revisions, so the new revisions keep the old order.
4. Commit: the files move into ``D/keys`` and ``D/pki``, then ``state.db`` into ``D`` (last:
   its presence is what makes ``shoal init`` take D for an existing cluster), then the staging
   folder goes.

A refusal (a data dir that holds a cluster, a store that is not empty or cannot be opened)
leaves no trace. After that, until the last step D holds no cluster: a failure while loading
leaves the staging folder with its note (and, for a store outside D such as etcd, the keys
written so far, which the error counts; a second run refuses until that store is emptied).
With the default store, ``shoal init`` on such a D starts a new cluster, never half of the
old one under a new CA.
The renames of step 4 are not one atomic step; a crash between them (microseconds) leaves
files that make a second restore refuse, naming them.

The restored revisions are new (1, 2, ... for a fresh store); object uids, names and contents
are the old ones, resourceVersions are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from shoal.backup.archive import KEYRING_FILES, PKI_FILES, SECRET_FILES, Backup
from shoal.security import pki
from shoal.store import KeyValue, Store, StoreError, open_store

STAGING = ".restore-incomplete"
NOTE = "RESTORING"
STATE_DB = "state.db"
_BATCH = 256  # creates awaited together: the sqlite store commits one loop turn's writes at once


class RestoreError(Exception):
    """A restore that was refused or failed; the message names the file, store or key, and
    what was written."""


@dataclass(frozen=True)
class Restored:
    data_dir: Path
    store_url: str  # as given; "" for the data dir's sqlite file
    objects: int
    revision: int  # the new store's revision after the load
    files: list[str] = field(default_factory=list)  # paths under data_dir
    notes: list[str] = field(default_factory=list)  # what the caller may want to tell the user


def default_store_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / STATE_DB}"


def check_data_dir(data_dir: Path) -> None:
    """Raise RestoreError if ``data_dir`` already holds (part of) a cluster, naming the file."""
    for name in (STATE_DB, *PKI_FILES, *KEYRING_FILES):
        path = data_dir / name
        if path.exists():
            raise RestoreError(
                f"{path} exists: {data_dir} already holds a cluster; restore into a new data dir "
                "(or move this one away first)"
            )


async def restore(backup: Backup, data_dir: Path, store_url: str = "", *, source: str = "") -> Restored:
    """Restore ``backup`` into ``data_dir`` and the store at ``store_url`` (default: sqlite in
    ``data_dir``). ``source`` names the backup file in the staging note. Raises RestoreError."""
    notes: list[str] = []
    if store_url == default_store_url(data_dir):
        store_url = ""  # the default, spelt out: staged like it, so D gets state.db only when complete
    check_data_dir(data_dir)
    staging = data_dir / STAGING
    if staging.exists():
        notes.append(f"removed {staging}, left by a restore that was cut short")
        await asyncio.to_thread(shutil.rmtree, staging)
    note = {
        "backup": source,
        "store": store_url or "sqlite (this folder's state.db)",
        "started": dt.datetime.now(dt.UTC).isoformat(),
        "revision": backup.manifest.revision,
    }
    try:
        await asyncio.to_thread(_stage, backup, data_dir, staging, note)
    except OSError as err:
        where = err.filename or data_dir
        raise RestoreError(f"cannot write {where}: {err.strerror}; nothing was restored") from None

    url = store_url or default_store_url(staging)
    shown = store_url or str(data_dir / STATE_DB)
    try:
        store = await open_store(url)
    except (StoreError, ValueError) as err:
        await asyncio.to_thread(shutil.rmtree, staging, True)
        raise RestoreError(f"cannot open the store {shown}: {err}; nothing was restored") from None
    revision = 0
    try:
        refusal = await _refusal(store, shown)
        if refusal is None:
            revision = await _load(store, backup.objects, shown, staging / NOTE, outside=bool(store_url))
    finally:
        with contextlib.suppress(StoreError):
            await store.close()
    if refusal is not None:
        await asyncio.to_thread(shutil.rmtree, staging, True)  # nothing was written: no trace
        raise RestoreError(refusal)

    try:
        files = await asyncio.to_thread(_commit, staging, data_dir, with_state_db=not store_url)
    except OSError as err:
        raise RestoreError(
            f"the objects are in {shown} but moving the restored files into {data_dir} failed: "
            f"{err.filename}: {err.strerror}; {staging} holds what is not yet in place"
        ) from None
    return Restored(data_dir, store_url, len(backup.objects), revision, files, notes)


async def _refusal(store: Store, shown: str) -> str | None:
    """Why a restore into ``store`` cannot start, or None: it must be empty."""
    try:
        present = await store.list("")
    except StoreError as err:
        return f"cannot read the store {shown}: {err}; nothing was restored"
    if present.items:
        return (
            f"the store {shown} is not empty (it holds {len(present.items)} keys, the first "
            f"{present.items[0].key}): a restore needs an empty store; nothing was restored"
        )
    return None


async def _load(store: Store, objects: list[KeyValue], shown: str, note: Path, *, outside: bool) -> int:
    """Create every key of ``objects`` in the empty ``store``; the store's revision after.
    ``outside``: the store is not in the staging folder, so what was written stays there."""
    ordered = sorted(objects, key=lambda kv: kv.mod_revision)
    written = 0
    for start in range(0, len(ordered), _BATCH):
        batch = ordered[start : start + _BATCH]
        results = await asyncio.gather(
            *(store.create(kv.key, kv.value) for kv in batch), return_exceptions=True
        )
        failures = [(kv, r) for kv, r in zip(batch, results, strict=True) if isinstance(r, BaseException)]
        written += len(batch) - len(failures)
        if failures:
            kv, failure = failures[0]
            if not isinstance(failure, Exception):
                raise failure  # cancelled, interrupted: not ours to report
            raise RestoreError(
                f"loading {kv.key} into {shown} failed: {failure}; {written} of {len(ordered)} objects were "
                f"written there; the restore is incomplete ({note} says so): "
                + ("empty that store, then run it again" if outside else "run it again")
            )
    try:
        return await store.current_revision()
    except StoreError as err:
        raise RestoreError(f"cannot read the revision of {shown} after the load: {err}") from None


def _stage(backup: Backup, data_dir: Path, staging: Path, note: dict[str, object]) -> None:
    """Write the note, then the backup's files, into the new staging folder."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging.mkdir(mode=0o700)
    pki.write_atomic(staging / NOTE, orjson.dumps(note, option=orjson.OPT_INDENT_2), 0o600)
    for name, data in backup.files.items():
        (staging / name).parent.mkdir(mode=0o700, exist_ok=True)
        pki.write_atomic(staging / name, data, 0o600 if name in SECRET_FILES else 0o644)


def _commit(staging: Path, data_dir: Path, *, with_state_db: bool) -> list[str]:
    """Move the staged files into ``data_dir``: the keyring and PKI first, ``state.db`` last
    (its -wal and -shm, if the store left them, before it), then drop the staging folder."""
    moved: list[str] = []
    for name in (*KEYRING_FILES, *PKI_FILES):
        if (staging / name).exists():
            (data_dir / name).parent.mkdir(mode=0o700, exist_ok=True)
            os.replace(staging / name, data_dir / name)
            moved.append(name)
    if with_state_db:
        for name in (f"{STATE_DB}-wal", f"{STATE_DB}-shm", STATE_DB):
            if (staging / name).exists():
                os.replace(staging / name, data_dir / name)
                if name == STATE_DB:
                    moved.append(name)
    fsync_dir(data_dir / "keys")
    fsync_dir(data_dir / "pki")
    fsync_dir(data_dir)
    shutil.rmtree(staging)
    return moved


def fsync_dir(path: Path) -> None:
    """Make the renames into ``path`` survive a crash (the backup file's too)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
