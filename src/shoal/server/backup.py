"""``GET /shoal/v1/backup``: the cluster as one file (``shoal backup``).

A non-resource URL, so the guard lets through only whom RBAC lets ``get`` it: cluster admins
(``cluster-admin``'s ``nonResourceURLs: ["*"]``, ``system:masters``); a ``view`` user is
refused, and so is an anonymous one. The answer holds the CA key: every backup is logged
with the user who took it.

What is read: the *raw* store below ``EncryptingStore`` with one ``list("")`` (every key at one
revision, so the snapshot is consistent), and the CA, the admin certificate and the keyring
from the data dir as on disk (``backup.archive.read_data_dir_files``). The archive is built
in memory (the listed values already are) in a worker thread, so the event loop keeps
serving, and sent with its length; ``shoal backup`` streams it to disk.

The API server learns its data dir and raw store from its runner (``serve_backups``, as
``security.join.serve_joins`` gives it the CA), so ``create_app`` keeps its signature; a
server started without them (tests serving bare ``Resources``) answers 503.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shoal.api.errors import InternalError, ServiceUnavailable
from shoal.backup import archive
from shoal.security.authn import USER_SCOPE_KEY
from shoal.security.identity import UserInfo
from shoal.store import KeyValue, Store, StoreError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/gzip"


@dataclass(frozen=True)
class _Source:
    data_dir: Path
    store: Store  # the backend itself, below encryption


_SOURCES: weakref.WeakKeyDictionary[Any, _Source] = weakref.WeakKeyDictionary()


def serve_backups(resources: Any, data_dir: Path, raw_store: Store) -> None:
    """Let the API server over ``resources`` answer backups from ``data_dir`` and ``raw_store``
    (the backend under the ``EncryptingStore``, so Secrets stay encrypted in the file)."""
    _SOURCES[resources] = _Source(data_dir, raw_store)


def store_kind(store: Store) -> str:
    """The backend's kind for the manifest (sqlite, memory, etcd): its module's name. Not the
    store URL, which may carry credentials."""
    return type(store).__module__.rsplit(".", 1)[-1]


def endpoint(resources: Any) -> Callable[[Request], Awaitable[Response]]:
    """The request handler for the API server over ``resources`` (wrapped by ``guarded``)."""

    async def backup(request: Request) -> Response:
        source = _SOURCES.get(resources)
        if source is None:
            raise ServiceUnavailable("this API server has no data dir to back up")
        try:
            listed = await source.store.list("")  # one read: every key at one revision
        except StoreError as err:
            raise ServiceUnavailable(f"the store is unavailable: {err}") from None
        try:
            data = await asyncio.to_thread(_archive, source, listed.items, listed.revision)
        except archive.BackupError as err:
            raise InternalError(f"cannot make a backup: {err}") from None
        user = request.scope.get(USER_SCOPE_KEY)
        log.warning(
            "backup taken by %s: revision %d, %d objects, %d bytes (it holds the CA key)",
            user.name if isinstance(user, UserInfo) else "an unauthenticated caller",
            listed.revision,
            len(listed.items),
            len(data),
        )
        name = f"shoal-backup-{listed.revision}.tar.gz"
        headers = {
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        }
        return Response(data, media_type=MEDIA_TYPE, headers=headers)

    return backup


def _archive(source: _Source, items: list[KeyValue], revision: int) -> bytes:
    files = archive.read_data_dir_files(source.data_dir)
    return archive.dumps(items, files, revision=revision, store=store_kind(source.store))
