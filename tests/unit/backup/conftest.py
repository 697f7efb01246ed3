"""A real manager data dir (CA, admin certificate, keyring) and a real sqlite store with a
Secret encrypted at rest, to back up and restore."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from shoal.backup import archive
from shoal.security import keys, pki
from shoal.store import KeyValue, open_store
from shoal.store.encryption import EncryptingStore

SECRET_KEY = "/registry/core/secrets/default/db"
PLAIN_SECRET = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'


@dataclass
class Source:
    data_dir: Path
    objects: list[KeyValue]
    revision: int

    def archive_bytes(self) -> bytes:
        files = archive.read_data_dir_files(self.data_dir)
        return archive.dumps(self.objects, files, revision=self.revision, store="sqlite")

    def write(self, path: Path, data: bytes | None = None) -> Path:
        path.write_bytes(self.archive_bytes() if data is None else data)
        return path


@pytest.fixture
async def source(tmp_path: Path) -> Source:
    data_dir = tmp_path / "old"
    pki.ensure_manager_pki(data_dir / "pki", ["127.0.0.1"])
    keyring, _ = keys.load_or_create(data_dir)
    store = EncryptingStore(await open_store(f"sqlite:///{data_dir / 'state.db'}"), keyring)
    try:
        await store.create("/registry/core/namespaces/default", b'{"kind":"Namespace"}')
        await store.create("/registry/core/configmaps/default/zeta", b'{"kind":"ConfigMap","v":1}')
        await store.update("/registry/core/configmaps/default/zeta", b'{"kind":"ConfigMap","v":2}')
        await store.create(SECRET_KEY, PLAIN_SECRET)
        await store.create("/registry/core/configmaps/default/alpha", b'{"kind":"ConfigMap"}')
        listed = await store.inner.list("")  # raw: the Secret as ciphertext
    finally:
        await store.close()
    return Source(data_dir, listed.items, listed.revision)
