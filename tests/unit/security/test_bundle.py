"""The manager bundle: made only over a shared store, written whole or not at all."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from shoal.api.errors import BadRequest, Conflict
from shoal.security import bundle, keys, pki


def manager_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "first"
    pki.ensure_manager_pki(data_dir / "pki", ["127.0.0.1"])
    keys.load_or_create(data_dir)
    return data_dir


def test_a_bundle_carries_the_ca_key_and_keyring_but_not_the_serving_certificate(tmp_path: Path) -> None:
    first = manager_dir(tmp_path)
    made = bundle.make(first, "etcd://127.0.0.1:2379")
    assert made["storeURL"] == "etcd://127.0.0.1:2379"
    assert "pki/ca.key" in made["files"] and "pki/server.key" not in made["files"]

    second = tmp_path / "second"
    assert bundle.save(second, made, "https://first") == "etcd://127.0.0.1:2379"
    for name in ("pki/ca.crt", "pki/ca.key", "pki/admin.key", f"{keys.KEY_DIR}/{keys.PLAIN_FILE}"):
        assert (second / name).read_bytes() == (first / name).read_bytes()
    assert stat.S_IMODE((second / "pki/ca.key").stat().st_mode) == 0o600
    # The second manager decrypts with the same keyring.
    assert keys.load_or_create(second)[0].write_id == keys.load_or_create(first)[0].write_id


def test_a_store_only_one_manager_can_open_is_not_shared(tmp_path: Path) -> None:
    first = manager_dir(tmp_path)
    for url in ("", "sqlite:///var/lib/shoal/state.db", "memory://"):
        with pytest.raises(Conflict, match="more managers need a shared store"):
            bundle.make(first, url)


def test_a_bad_bundle_writes_nothing(tmp_path: Path) -> None:
    first = manager_dir(tmp_path)
    made = bundle.make(first, "etcd://127.0.0.1:2379")
    target = tmp_path / "target"
    bad = [
        None,
        {"storeURL": "etcd://x"},
        {**made, "files": {**made["files"], "../../etc/passwd": "eA=="}},
        {**made, "files": {k: v for k, v in made["files"].items() if k != "pki/ca.key"}},
        {**made, "files": {**made["files"], "pki/ca.crt": "not base64!"}},
    ]
    for candidate in bad:
        with pytest.raises(BadRequest):
            bundle.save(target, candidate, "https://first")
        assert not target.exists()


def test_a_data_dir_of_another_cluster_is_refused(tmp_path: Path) -> None:
    made = bundle.make(manager_dir(tmp_path), "etcd://127.0.0.1:2379")
    other = tmp_path / "other"
    pki.ensure_manager_pki(other / "pki", ["127.0.0.1"])
    key_before = (other / "pki/ca.key").read_bytes()
    with pytest.raises(Conflict, match="another cluster's CA"):
        bundle.save(other, made, "https://first")
    assert (other / "pki/ca.key").read_bytes() == key_before
    assert base64.b64decode(made["files"]["pki/ca.key"]) != key_before
