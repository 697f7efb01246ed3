"""Restore into a real data dir and a real sqlite store: everything lands, or (refused) nothing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shoal.backup import RestoreError, archive, check_data_dir, restore
from shoal.backup.restore import NOTE, STAGING
from shoal.security import keys, pki
from shoal.store import open_store
from shoal.store.encryption import EncryptingStore
from tests.unit.backup.conftest import PLAIN_SECRET, SECRET_KEY, Source


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_everything_lands_and_secrets_decrypt_under_the_restored_keyring(
    source: Source, tmp_path: Path
) -> None:
    backup = archive.load(source.write(tmp_path / "b.tar.gz"))
    new = tmp_path / "new"
    done = await restore(backup, new)
    assert done.objects == 4 and done.revision == 4  # a fresh store: revisions 1..4
    assert sorted(done.files) == sorted([*archive.PKI_FILES, "keys/cluster-keys.json", "state.db"])
    assert not (new / STAGING).exists()
    for name in (*archive.PKI_FILES, "keys/cluster-keys.json"):
        assert (new / name).read_bytes() == (source.data_dir / name).read_bytes()
    assert mode(new / "pki" / "ca.key") == mode(new / "pki" / "admin.key") == 0o600
    assert mode(new / "keys" / "cluster-keys.json") == 0o600
    assert mode(new / "pki") == mode(new / "keys") == 0o700

    keyring, _ = keys.load_or_create(new)
    store = EncryptingStore(await open_store(f"sqlite:///{new / 'state.db'}"), keyring)
    try:
        raw = (await store.inner.list("")).items
        assert {kv.key: kv.value for kv in raw} == {kv.key: kv.value for kv in source.objects}
        # The old order of writes survives as the order of the new revisions.
        old_order = [kv.key for kv in sorted(source.objects, key=lambda kv: kv.mod_revision)]
        assert [kv.key for kv in sorted(raw, key=lambda kv: kv.mod_revision)] == old_order
        secret = await store.get(SECRET_KEY)
        assert secret is not None and secret.value == PLAIN_SECRET
    finally:
        await store.close()


@pytest.mark.parametrize("present", ["state.db", "pki/ca.key", "keys/cluster-keys.sealed"])
async def test_a_data_dir_that_holds_a_cluster_is_refused(
    source: Source, tmp_path: Path, present: str
) -> None:
    backup = archive.load(source.write(tmp_path / "b.tar.gz"))
    new = tmp_path / "new"
    (new / present).parent.mkdir(parents=True, exist_ok=True)
    (new / present).write_bytes(b"already here")
    with pytest.raises(RestoreError, match=rf"{new / present} exists: {new} already holds a cluster"):
        await restore(backup, new)
    assert sorted(p.relative_to(new).as_posix() for p in new.rglob("*") if p.is_file()) == [present]
    with pytest.raises(RestoreError):
        check_data_dir(new)


async def test_a_store_that_is_not_empty_is_refused_and_nothing_is_left(
    source: Source, tmp_path: Path
) -> None:
    backup = archive.load(source.write(tmp_path / "b.tar.gz"))
    other = tmp_path / "other.db"
    store = await open_store(f"sqlite:///{other}")
    await store.create("/registry/core/namespaces/kept", b"{}")
    await store.create("/registry/core/namespaces/also-kept", b"{}")
    await store.close()
    new = tmp_path / "new"
    url = f"sqlite:///{other}"
    with pytest.raises(
        RestoreError,
        match=rf"the store {url} is not empty \(it holds 2 keys, the first /registry/core/namespaces/also-k",
    ):
        await restore(backup, new, url)
    assert not any(new.iterdir())  # no staging, no files: nothing was restored
    store = await open_store(url)
    try:
        assert len((await store.list("")).items) == 2
    finally:
        await store.close()


async def test_into_a_store_outside_the_data_dir(source: Source, tmp_path: Path) -> None:
    backup = archive.load(source.write(tmp_path / "b.tar.gz"))
    new, url = tmp_path / "new", f"sqlite:///{tmp_path / 'elsewhere.db'}"
    done = await restore(backup, new, url)
    assert done.objects == 4 and "state.db" not in done.files and not (new / "state.db").exists()
    store = await open_store(url)
    try:
        assert len((await store.list("")).items) == 4
    finally:
        await store.close()


async def test_a_store_that_cannot_be_opened_leaves_nothing(source: Source, tmp_path: Path) -> None:
    backup = archive.load(source.write(tmp_path / "b.tar.gz"))
    new = tmp_path / "new"
    with pytest.raises(
        RestoreError, match=r"cannot open the store nosuch://x: .*unknown scheme.*nothing was restored"
    ):
        await restore(backup, new, "nosuch://x")
    assert not any(new.iterdir())


async def test_what_a_restore_cut_short_left_is_cleared(source: Source, tmp_path: Path) -> None:
    backup = archive.load(source.write(tmp_path / "b.tar.gz"))
    new = tmp_path / "new"
    (new / STAGING / "pki").mkdir(parents=True)
    (new / STAGING / NOTE).write_text("{}")
    (new / STAGING / "state.db").write_bytes(b"half a database")
    done = await restore(backup, new)
    assert done.notes == [f"removed {new / STAGING}, left by a restore that was cut short"]
    assert done.objects == 4 and not (new / STAGING).exists()


async def test_a_sealed_keyring_stays_sealed(tmp_path: Path) -> None:
    """With autolock the keyring travels as on disk, sealed: the restored manager starts locked
    and the cluster's unlock key opens it."""
    old = tmp_path / "old"
    pki.ensure_manager_pki(old / "pki", ["127.0.0.1"])
    keyring, unlock_key = keys.load_or_create(old, autolock=True)
    assert unlock_key is not None
    files = archive.read_data_dir_files(old)
    assert set(files) == {*archive.PKI_FILES, "keys/cluster-keys.sealed"}
    path = tmp_path / "b.tar.gz"
    path.write_bytes(archive.dumps([], files, revision=0, store="sqlite"))
    backup = archive.load(path)
    assert backup.sealed
    new = tmp_path / "new"
    done = await restore(backup, new)
    assert done.objects == 0
    restored, _ = keys.load_or_create(new)
    assert restored.locked and restored.unlock(unlock_key)
    assert restored.keys == keyring.keys
