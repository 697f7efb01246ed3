"""Secrets encrypted at rest: the EncryptingStore's envelope, the keyring's files, rotation,
and autolock (locked manager: 503 for Secrets only; wrong key refused; right key unlocks).

The store contract itself runs over the EncryptingStore in tests/contract."""

from __future__ import annotations

import asyncio
import base64
import secrets
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from shoal.api import REGISTRY
from shoal.api.errors import ServiceUnavailable
from shoal.security import keys
from shoal.server.app import create_app
from shoal.server.resources import Resources
from shoal.store import KeyValue, RevisionMismatch
from shoal.store.encryption import HEADER, DecryptionFailed, EncryptingStore, StoreLocked
from shoal.store.memory import MemoryStore
from shoal.store.sqlite import SqliteStore

SECRETS = REGISTRY.lookup("secrets")
CONFIG_MAPS = REGISTRY.lookup("configmaps")
KEY = "/registry/core/secrets/default/db"


def secret(name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"password": base64.b64encode(value.encode()).decode()},
    }


@pytest.fixture
def keyring(tmp_path: Path) -> keys.Keyring:
    ring, unlock_key = keys.load_or_create(tmp_path)
    assert unlock_key is None
    return ring


async def test_secrets_are_stored_encrypted_and_read_back_plain(keyring: keys.Keyring) -> None:
    inner = MemoryStore()
    store = EncryptingStore(inner, keyring)
    created = await store.create(KEY, b'{"data": "hunter2"}')
    assert created.value == b'{"data": "hunter2"}'
    raw = await inner.get(KEY)
    assert raw is not None
    assert raw.value.startswith(HEADER + keyring.write_id.encode() + b":")
    assert b"hunter2" not in raw.value
    got = await store.get(KEY)
    assert got is not None and got.value == b'{"data": "hunter2"}'
    assert got.mod_revision == raw.mod_revision == created.mod_revision
    # Other kinds are not touched.
    await store.create("/registry/core/configmaps/default/c", b"plain")
    plain = await inner.get("/registry/core/configmaps/default/c")
    assert plain is not None and plain.value == b"plain"


async def test_compare_and_swap_compares_revisions_not_ciphertexts(keyring: keys.Keyring) -> None:
    store = EncryptingStore(MemoryStore(), keyring)
    first = await store.create(KEY, b"v1")
    second = await store.update(KEY, b"v1", expected_revision=first.mod_revision)  # same plaintext
    with pytest.raises(RevisionMismatch):
        await store.update(KEY, b"v2", expected_revision=first.mod_revision)
    with pytest.raises(RevisionMismatch):
        await store.delete(KEY, expected_revision=first.mod_revision)
    gone = await store.delete(KEY, expected_revision=second.mod_revision)
    assert gone.value == b"v1"


async def test_list_and_watch_decrypt_values_and_previous_values(keyring: keys.Keyring) -> None:
    store = EncryptingStore(MemoryStore(), keyring)
    start = await store.current_revision()
    kv = await store.create(KEY, b"one")
    await store.update(KEY, b"two", kv.mod_revision)
    await store.delete(KEY)
    listed = await store.list("/registry/core/secrets/", kv.mod_revision)
    assert [i.value for i in listed.items] == [b"one"]
    watch = store.watch("/registry/", start)
    events = [await anext(watch) for _ in range(3)]
    await watch.aclose()
    assert [e.kv.value for e in events] == [b"one", b"two", b"two"]
    assert [e.prev.value if e.prev else None for e in events] == [None, b"one", b"two"]


async def test_a_value_written_before_encryption_reads_as_plaintext(keyring: keys.Keyring) -> None:
    inner = MemoryStore()
    await inner.create(KEY, b'{"legacy": true}')
    store = EncryptingStore(inner, keyring)
    got = await store.get(KEY)
    assert got is not None and got.value == b'{"legacy": true}'


async def test_ciphertext_moved_to_another_key_or_damaged_does_not_decrypt(keyring: keys.Keyring) -> None:
    inner = MemoryStore()
    store = EncryptingStore(inner, keyring)
    await store.create(KEY, b"secret")
    raw = await inner.get(KEY)
    assert raw is not None
    other = "/registry/core/secrets/default/other"
    await inner.create(other, raw.value)
    with pytest.raises(DecryptionFailed, match="damaged"):
        await store.get(other)
    await inner.update(KEY, raw.value[:-1] + bytes([raw.value[-1] ^ 1]))
    with pytest.raises(DecryptionFailed, match="damaged"):
        await store.get(KEY)
    await inner.update(KEY, HEADER + b"deadbeef:" + b"x" * 40)
    with pytest.raises(DecryptionFailed, match="deadbeef"):
        await store.get(KEY)


async def test_an_undecryptable_secret_is_a_503_status_not_a_traceback(keyring: keys.Keyring) -> None:
    assert SECRETS is not None
    inner = MemoryStore()
    resources = Resources(EncryptingStore(inner, keyring))
    await resources.bootstrap()
    await inner.create(SECRETS.key("default", "broken"), HEADER + b"gone:" + b"x" * 40)
    with pytest.raises(ServiceUnavailable, match="cannot decrypt"):
        await resources.get(SECRETS, "default", "broken")
    with pytest.raises(ServiceUnavailable, match="cannot decrypt"):
        await resources.list(SECRETS, "default")


def test_key_files_are_private(tmp_path: Path, keyring: keys.Keyring) -> None:
    directory = tmp_path / keys.KEY_DIR
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / keys.PLAIN_FILE).stat().st_mode) == 0o600
    again, _ = keys.load_or_create(tmp_path)
    assert again.keys == keyring.keys and again.write_id == keyring.write_id
    assert [p.name for p in directory.iterdir()] == [keys.PLAIN_FILE]  # no temporary left


# -- rotation ------------------------------------------------------------------------------


async def test_rotation_reencrypts_every_secret_and_drops_the_old_key(tmp_path: Path) -> None:
    assert SECRETS is not None
    keyring, _ = keys.load_or_create(tmp_path)
    old_id = keyring.write_id
    inner = await SqliteStore.open(str(tmp_path / "state.db"))
    store = EncryptingStore(inner, keyring)
    resources = Resources(store)
    await resources.bootstrap()
    values = {f"s{i}": secrets.token_hex(8) for i in range(25)}
    for name, value in values.items():
        await resources.create(SECRETS, "default", secret(name, value))
    done = await keys.rotate(store)
    assert done.reencrypted == 25 and done.removed == [old_id] and not done.resumed
    assert done.key_id != old_id
    for kv in (await inner.list("/registry/core/secrets/")).items:
        assert store.key_id_of(kv.value) == done.key_id
    await inner.close()
    # From the files alone: only the new key, and every secret reads back.
    reloaded, _ = keys.load_or_create(tmp_path)
    assert list(reloaded.keys) == [done.key_id]
    store = EncryptingStore(await SqliteStore.open(str(tmp_path / "state.db")), reloaded)
    resources = Resources(store)
    for name, value in values.items():
        got = await resources.get(SECRETS, "default", name)
        assert base64.b64decode(got["data"]["password"]).decode() == value
    await store.close()


async def test_a_rotation_cut_short_resumes_with_the_same_new_key(tmp_path: Path) -> None:
    keyring, _ = keys.load_or_create(tmp_path)
    store = EncryptingStore(MemoryStore(), keyring)
    for i in range(6):
        await store.create(f"/registry/core/secrets/default/s{i}", f"v{i}".encode())
    # A rotation that saved its new key and rewrote two values, then died.
    new_id = keyring.add_write_key()
    keyring.save()
    for i in range(2):
        kv = await store.get(f"/registry/core/secrets/default/s{i}")
        assert kv is not None
        await store.update(kv.key, kv.value, kv.mod_revision)
    reloaded, _ = keys.load_or_create(tmp_path)
    assert len(reloaded.keys) == 2 and reloaded.write_id == new_id
    store.keyring = reloaded
    done = await keys.rotate(store)
    assert done.resumed and done.key_id == new_id and done.reencrypted == 4
    assert list(reloaded.keys) == [new_id]
    for i in range(6):
        kv = await store.get(f"/registry/core/secrets/default/s{i}")
        assert kv is not None and kv.value == f"v{i}".encode()


async def test_rotation_rereads_a_secret_changed_meanwhile(tmp_path: Path) -> None:
    keyring, _ = keys.load_or_create(tmp_path)
    inner = MemoryStore()
    store = EncryptingStore(inner, keyring)
    await store.create(KEY, b"before")

    class Racing(EncryptingStore):
        raced = False

        async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> KeyValue:
            if not Racing.raced:
                Racing.raced = True
                await super().update(key, b"concurrent")  # another writer wins first
            return await super().update(key, value, expected_revision)

    racing = Racing(inner, keyring)
    done = await keys.rotate(racing)
    # The concurrent write (already under the new key) is kept, not overwritten by the stale
    # value the rotation had read; re-read, it needs no re-encryption.
    assert Racing.raced and done.reencrypted == 0
    got = await store.get(KEY)
    assert got is not None and got.value == b"concurrent"
    raw = await inner.get(KEY)
    assert raw is not None and store.key_id_of(raw.value) == done.key_id


# -- autolock --------------------------------------------------------------------------------


def test_autolock_seals_the_keys_with_a_printed_operator_key(tmp_path: Path) -> None:
    keyring, unlock_key = keys.load_or_create(tmp_path, autolock=True)
    assert unlock_key is not None and unlock_key.startswith("SHOALKEY-1-")
    assert not keyring.locked
    directory = tmp_path / keys.KEY_DIR
    assert [p.name for p in directory.iterdir()] == [keys.SEALED_FILE]
    assert stat.S_IMODE((directory / keys.SEALED_FILE).stat().st_mode) == 0o600
    sealed = (directory / keys.SEALED_FILE).read_bytes()
    assert base64.b64encode(keyring.keys[keyring.write_id]) not in sealed
    restarted, again = keys.load_or_create(tmp_path, autolock=True)
    assert again is None and restarted.locked
    with pytest.raises(keys.WrongUnlockKey):
        restarted.unlock("SHOALKEY-1-" + base64.urlsafe_b64encode(b"x" * 32).decode())
    assert restarted.locked
    assert restarted.unlock(unlock_key) is True
    assert restarted.keys == keyring.keys
    assert restarted.unlock(unlock_key) is False  # already open; the key still checked


def test_autolock_on_an_existing_cluster_keeps_its_key(tmp_path: Path, keyring: keys.Keyring) -> None:
    sealed, unlock_key = keys.load_or_create(tmp_path, autolock=True)
    assert unlock_key is not None and sealed.keys == keyring.keys
    assert not (tmp_path / keys.KEY_DIR / keys.PLAIN_FILE).exists()


@pytest.fixture
async def locked(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str, MemoryStore]]:
    """A manager restarted with autolock: its app over a locked keyring, a Secret and a
    ConfigMap written before the restart."""
    assert SECRETS is not None and CONFIG_MAPS is not None
    keyring, unlock_key = keys.load_or_create(tmp_path, autolock=True)
    assert unlock_key is not None
    inner = MemoryStore()
    before = Resources(EncryptingStore(inner, keyring))
    await before.bootstrap()
    await before.create(SECRETS, "default", secret("db", "hunter2"))
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}}
    await before.create(CONFIG_MAPS, "default", config)
    restarted, _ = keys.load_or_create(tmp_path, autolock=True)
    app = create_app(Resources(EncryptingStore(inner, restarted)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, unlock_key, inner


async def test_a_locked_manager_refuses_secrets_with_503_and_serves_the_rest(
    locked: tuple[httpx.AsyncClient, str, MemoryStore],
) -> None:
    client, _, inner = locked
    for method, path, body in [
        ("GET", "/api/v1/namespaces/default/secrets/db", None),
        ("GET", "/api/v1/namespaces/default/secrets", None),
        ("GET", "/api/v1/secrets", None),
        ("POST", "/api/v1/namespaces/default/secrets", secret("new", "x")),
        ("DELETE", "/api/v1/namespaces/default/secrets/db", None),
    ]:
        response = await client.request(method, path, content=orjson.dumps(body) if body else None)
        assert response.status_code == 503, (method, path, response.text)
        assert keys.LOCKED_MESSAGE in response.json()["message"]
    assert await inner.get("/registry/core/secrets/default/db") is not None  # nothing deleted
    assert await inner.get("/registry/core/secrets/default/new") is None
    response = await client.get("/api/v1/namespaces/default/configmaps/cfg")
    assert response.status_code == 200 and response.json()["data"] == {"a": "b"}


async def test_a_wrong_unlock_key_is_refused_and_changes_nothing(
    locked: tuple[httpx.AsyncClient, str, MemoryStore],
) -> None:
    client, _, _ = locked
    wrong = "SHOALKEY-1-" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    for key, code in [(wrong, 401), ("SHOALKEY-1-short", 401), ("nonsense", 401)]:
        response = await client.post("/shoal/v1/unlock", json={"unlockKey": key})
        assert response.status_code == code, response.text
        assert "locked" in response.json()["message"]
    assert (await client.post("/shoal/v1/unlock", content=b"{}")).status_code == 400
    assert (await client.get("/api/v1/namespaces/default/secrets/db")).status_code == 503


async def test_the_right_unlock_key_opens_the_secrets(
    locked: tuple[httpx.AsyncClient, str, MemoryStore],
) -> None:
    client, unlock_key, _ = locked
    response = await client.post("/shoal/v1/unlock", json={"unlockKey": unlock_key})
    assert response.status_code == 200 and response.json()["message"] == "the cluster is unlocked"
    got = (await client.get("/api/v1/namespaces/default/secrets/db")).json()
    assert base64.b64decode(got["data"]["password"]) == b"hunter2"
    response = await client.post("/shoal/v1/unlock", json={"unlockKey": unlock_key})
    assert response.status_code == 200 and "not locked" in response.json()["message"]


async def test_unlock_on_a_cluster_without_autolock_is_404(keyring: keys.Keyring) -> None:
    app = create_app(Resources(EncryptingStore(MemoryStore(), keyring)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/shoal/v1/unlock", json={"unlockKey": "SHOALKEY-1-x"})
    assert response.status_code == 404 and "no autolock" in response.json()["message"]


async def test_store_locked_is_a_store_error_for_writes_before_the_backend(tmp_path: Path) -> None:
    keys.load_or_create(tmp_path, autolock=True)
    restarted, _ = keys.load_or_create(tmp_path)
    inner = MemoryStore()
    store = EncryptingStore(inner, restarted)
    with pytest.raises(StoreLocked):
        await store.create(KEY, b"x")
    assert await inner.current_revision() == 0


def test_shoal_secret_key_rotate_on_a_stopped_managers_data_dir(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shoal.cli.main import cli

    keyring, _ = keys.load_or_create(tmp_path)
    old_id = keyring.write_id

    async def write() -> None:
        store = EncryptingStore(await SqliteStore.open(str(tmp_path / "state.db")), keyring)
        for i in range(3):
            await store.create(f"/registry/core/secrets/default/s{i}", b"v")
        await store.close()

    asyncio.run(write())
    result = CliRunner().invoke(cli, ["secret-key", "rotate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "3 secret(s) re-encrypted" in result.output and old_id in result.output
    reloaded, _ = keys.load_or_create(tmp_path)
    assert old_id not in reloaded.keys
    empty = CliRunner().invoke(cli, ["secret-key", "rotate", "--data-dir", str(tmp_path / "nothing")])
    assert empty.exit_code != 0 and "holds no cluster keys" in empty.output


async def test_a_dry_run_create_over_a_locked_secret_is_a_503_not_a_500(
    locked: tuple[httpx.AsyncClient, str, MemoryStore],
) -> None:
    client, _, _ = locked
    path = "/api/v1/namespaces/default/secrets?dryRun=All"
    response = await client.post(path, content=orjson.dumps(secret("db", "x")))
    assert response.status_code == 503 and keys.LOCKED_MESSAGE in response.json()["message"]
