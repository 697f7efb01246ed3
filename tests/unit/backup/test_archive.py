"""The backup file: what goes in comes out, and anything else is refused with the file, the
member and the reason named."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import orjson
import pytest

from shoal.backup import archive
from shoal.backup.archive import BackupError
from tests.unit.backup.conftest import PLAIN_SECRET, SECRET_KEY, Source


def members_of(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        out = {}
        for info in tar:
            member = tar.extractfile(info)
            assert member is not None
            out[info.name] = member.read()
        return out


def pack(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=out, mode="wb") as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def with_manifest(data: bytes, **changes: object) -> bytes:
    members = members_of(data)
    manifest = orjson.loads(members["manifest.json"])
    manifest.update(changes)
    members["manifest.json"] = orjson.dumps(manifest)
    return pack(members)


def test_round_trip(source: Source, tmp_path: Path) -> None:
    path = source.write(tmp_path / "b.tar.gz")
    backup = archive.load(path)
    assert backup.objects == sorted(source.objects, key=lambda kv: kv.key)
    assert backup.manifest.revision == source.revision
    assert backup.manifest.objects == len(source.objects) == 4
    assert backup.manifest.store == "sqlite"
    assert backup.manifest.format_version == archive.FORMAT_VERSION
    assert set(backup.files) == {*archive.PKI_FILES, "keys/cluster-keys.json"}
    for name, data in backup.files.items():
        assert data == (source.data_dir / name).read_bytes()
    assert not backup.sealed
    secret = next(kv for kv in backup.objects if kv.key == SECRET_KEY)
    assert secret.value.startswith(b"shoal:aesgcm:v1:") and PLAIN_SECRET not in secret.value
    # The serving certificate names the old address: the new manager makes its own.
    assert "pki/server.key" not in backup.files


def test_the_manifest_comes_first_and_lists_every_digest(source: Source) -> None:
    data = source.archive_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json"
    manifest = orjson.loads(members_of(data)["manifest.json"])
    assert manifest["format"] == "shoal-backup"
    assert set(manifest["sha256"]) == set(names[1:])


def test_a_data_dir_without_its_ca_key_is_no_backup_source(source: Source) -> None:
    (source.data_dir / "pki" / "ca.key").unlink()
    with pytest.raises(BackupError, match=r"pki/ca.key is missing"):
        archive.read_data_dir_files(source.data_dir)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"nope.tar.gz: cannot read it: No such file"):
        archive.load(tmp_path / "nope.tar.gz")


@pytest.mark.parametrize("content", [b"", b"hello, not a backup\n", b"PK\x03\x04 a zip file"])
def test_not_a_gzip_tar(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(content)
    with pytest.raises(
        BackupError, match=r"x.tar.gz: not a shoal backup \(not a gzip-compressed tar archive\)"
    ):
        archive.load(path)


def test_a_gzip_that_holds_no_tar(tmp_path: Path) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(gzip.compress(b"just text, no tar headers here" * 40))
    with pytest.raises(BackupError, match=r"x.tar.gz: the file is truncated or damaged"):
        archive.load(path)


def test_no_manifest(source: Source, tmp_path: Path) -> None:
    members = members_of(source.archive_bytes())
    del members["manifest.json"]
    path = source.write(tmp_path / "b.tar.gz", pack(members))
    with pytest.raises(BackupError, match=r"b.tar.gz: no manifest.json in the archive: not a shoal backup"):
        archive.load(path)


def test_a_newer_format_version(source: Source, tmp_path: Path) -> None:
    path = source.write(tmp_path / "b.tar.gz", with_manifest(source.archive_bytes(), formatVersion=2))
    with pytest.raises(
        BackupError, match=r"format version 2 is not supported; .* reads version 1 \(written by a newer"
    ):
        archive.load(path)


def test_a_foreign_manifest(source: Source, tmp_path: Path) -> None:
    path = source.write(tmp_path / "b.tar.gz", with_manifest(source.archive_bytes(), format="etcd-snapshot"))
    with pytest.raises(BackupError, match=r"manifest.json: format is 'etcd-snapshot', not 'shoal-backup'"):
        archive.load(path)


def test_a_manifest_field_of_the_wrong_type(source: Source, tmp_path: Path) -> None:
    path = source.write(tmp_path / "b.tar.gz", with_manifest(source.archive_bytes(), revision="12"))
    with pytest.raises(BackupError, match=r"manifest.json: revision is '12', not a int"):
        archive.load(path)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated(source: Source, tmp_path: Path, keep: float) -> None:
    data = source.archive_bytes()
    path = source.write(tmp_path / "b.tar.gz", data[: int(len(data) * keep)])
    with pytest.raises(BackupError, match=r"b.tar.gz: the file is truncated or damaged"):
        archive.load(path)


def test_a_member_changed_after_the_manifest(source: Source, tmp_path: Path) -> None:
    members = members_of(source.archive_bytes())
    members["files/pki/ca.crt"] = b"-----BEGIN CERTIFICATE-----\nforged\n"
    path = source.write(tmp_path / "b.tar.gz", pack(members))
    with pytest.raises(BackupError, match=r"files/pki/ca.crt: its sha256 does not match the manifest's"):
        archive.load(path)


def test_a_member_outside_the_format_is_never_written_anywhere(source: Source, tmp_path: Path) -> None:
    members = members_of(source.archive_bytes())
    members["../../etc/evil"] = b"x"
    path = source.write(tmp_path / "b.tar.gz", pack(members))
    with pytest.raises(BackupError, match=r"'../../etc/evil': not a member of a shoal backup"):
        archive.load(path)


def test_a_bad_object_line_is_named(source: Source, tmp_path: Path) -> None:
    members = members_of(source.archive_bytes())
    lines = members["objects.jsonl"].splitlines()
    lines[1] = b'{"key": "/registry/x", "value": "not base64!", "createRevision": 1, "modRevision": 1}'
    members["objects.jsonl"] = b"\n".join(lines) + b"\n"
    manifest = orjson.loads(members["manifest.json"])
    manifest["sha256"]["objects.jsonl"] = hashlib.sha256(members["objects.jsonl"]).hexdigest()
    members["manifest.json"] = orjson.dumps(manifest)
    path = source.write(tmp_path / "b.tar.gz", pack(members))
    with pytest.raises(BackupError, match=r"objects.jsonl line 2: not an object record"):
        archive.load(path)


def test_the_object_count_must_agree(source: Source, tmp_path: Path) -> None:
    path = source.write(tmp_path / "b.tar.gz", with_manifest(source.archive_bytes(), objects=5))
    with pytest.raises(BackupError, match=r"objects.jsonl holds 4 objects; the manifest says 5"):
        archive.load(path)
