"""The backup file: one gzip'd tar that a restore can trust or refuse.

Members, in this order::

    manifest.json    {"format": "shoal-backup", "formatVersion": 1, "shoalVersion": ...,
                      "store": "sqlite", "revision": R, "objects": N, "created": ISO time,
                      "sha256": {member name: hex digest, for every other member}}
    objects.jsonl    one line per key, sorted by key: {"key", "value" (base64 of the bytes
                     the backend holds), "createRevision", "modRevision"}
    files/pki/ca.crt, files/pki/ca.key, files/pki/admin.crt, files/pki/admin.key
    files/keys/cluster-keys.json or files/keys/cluster-keys.sealed (autolock)

Values are the raw backend's (below ``EncryptingStore``), so a Secret is ciphertext here as in
the store, and only the keyring beside it opens it: the file as a whole is as sensitive as the
data dir (it holds the CA key), and is written 0600.

Reading (``load``) checks everything before a restore writes anything: that it is a gzip'd tar,
complete (gzip's CRC and the tar's end), that the manifest names this format and a version this
shoal reads, that every member is one it expects and matches its digest, that the object count
and revisions agree. Members are read into memory, never extracted, so a hostile name
(``../x``, ``/etc/x``) cannot place a file anywhere. Every refusal is a ``BackupError`` naming
the file, the member or line, and what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import gzip
import hashlib
import io
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shoal import __version__
from shoal.store import KeyValue

FORMAT = "shoal-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
OBJECTS = "objects.jsonl"
FILES_PREFIX = "files/"

# What a new manager needs from the old data dir, as paths under it. The serving certificate is
# left out on purpose: it names the old address, and the new manager issues its own.
PKI_FILES = ("pki/ca.crt", "pki/ca.key", "pki/admin.crt", "pki/admin.key")
KEYRING_FILES = ("keys/cluster-keys.json", "keys/cluster-keys.sealed")
SECRET_FILES = frozenset({"pki/ca.key", "pki/admin.key", *KEYRING_FILES})  # written 0600

_MAX_MEMBER = 4 << 30  # a sanity bound against a forged size field, far above any real store


class BackupError(Exception):
    """A backup file that cannot be written or read; the message names the file and why."""


@dataclass(frozen=True, slots=True)
class Manifest:
    format_version: int
    shoal_version: str
    store: str  # the source backend's kind: sqlite, memory, etcd
    revision: int  # the store revision every object was read at
    objects: int
    created: str  # RFC 3339, UTC

    def to_json(self, digests: dict[str, str]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "formatVersion": self.format_version,
            "shoalVersion": self.shoal_version,
            "store": self.store,
            "revision": self.revision,
            "objects": self.objects,
            "created": self.created,
            "sha256": digests,
        }


@dataclass(frozen=True)
class Backup:
    manifest: Manifest
    objects: list[KeyValue]  # sorted by key, with the source store's revisions
    files: dict[str, bytes]  # path under the data dir (pki/ca.key) -> bytes as on disk

    @property
    def sealed(self) -> bool:
        """Whether the keyring is sealed (autolock): the restored cluster needs `shoal unlock`."""
        return "keys/cluster-keys.sealed" in self.files


def read_data_dir_files(data_dir: Path) -> dict[str, bytes]:
    """The files of a manager's data dir that go into a backup, as on disk. Raises
    BackupError naming a missing one (a data dir without its CA is no cluster)."""
    files: dict[str, bytes] = {}
    for name in (*PKI_FILES, *KEYRING_FILES):
        path = data_dir / name
        try:
            files[name] = path.read_bytes()
        except FileNotFoundError:
            if name in PKI_FILES:
                raise BackupError(f"{path} is missing: the data dir holds no complete cluster PKI") from None
        except OSError as err:
            raise BackupError(f"{path}: cannot read it: {err.strerror}") from None
    if not any(name in files for name in KEYRING_FILES):
        raise BackupError(f"{data_dir / 'keys'} holds no keyring: the Secrets could not be decrypted")
    return files


def dumps(
    objects: list[KeyValue],
    files: dict[str, bytes],
    *,
    revision: int,
    store: str,
    created: dt.datetime | None = None,
) -> bytes:
    """The backup file's bytes for ``objects`` (one store read at ``revision``) and ``files``
    (``read_data_dir_files``)."""
    when = (created or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    lines = b"".join(
        orjson.dumps(
            {
                "key": kv.key,
                "value": base64.b64encode(kv.value).decode(),
                "createRevision": kv.create_revision,
                "modRevision": kv.mod_revision,
            }
        )
        + b"\n"
        for kv in sorted(objects, key=lambda kv: kv.key)
    )
    members = {OBJECTS: lines, **{FILES_PREFIX + name: data for name, data in sorted(files.items())}}
    manifest = Manifest(
        FORMAT_VERSION, __version__, store, revision, len(objects), when.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    out = io.BytesIO()
    # mtime=0 in the gzip header and fixed tar metadata: the same store gives the same bytes.
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, data in {MANIFEST: orjson.dumps(manifest.to_json(digests)), **members}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, int(when.timestamp())
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def load(path: Path) -> Backup:
    """Read and check the backup file at ``path``; raises BackupError saying what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BackupError(f"{path}: cannot read it: {err.strerror}") from None
    return loads(data, str(path))


def loads(data: bytes, where: str) -> Backup:
    """``load`` for bytes already read; ``where`` names them in errors."""
    members = _members(data, where)
    if MANIFEST not in members:
        raise BackupError(f"{where}: no {MANIFEST} in the archive: not a shoal backup")
    manifest, digests = _manifest(members.pop(MANIFEST), where)
    for name in members:
        if name not in digests:
            raise BackupError(f"{where}: {name}: a member the manifest does not list (the file was altered)")
    for name, digest in digests.items():
        if name not in members:
            raise BackupError(f"{where}: {name}: listed in the manifest but missing from the archive")
        if hashlib.sha256(members[name]).hexdigest() != digest:
            raise BackupError(
                f"{where}: {name}: its sha256 does not match the manifest's (the file is damaged)"
            )
    if OBJECTS not in members:
        raise BackupError(f"{where}: no {OBJECTS} in the archive")
    objects = _objects(members.pop(OBJECTS), manifest, where)
    files = {name.removeprefix(FILES_PREFIX): data for name, data in members.items()}
    for name in PKI_FILES:
        if name not in files:
            raise BackupError(f"{where}: {FILES_PREFIX}{name} is missing: a restored cluster needs it")
    if not any(name in files for name in KEYRING_FILES):
        raise BackupError(f"{where}: no keyring ({', '.join(KEYRING_FILES)}): the Secrets could not be read")
    return Backup(manifest, objects, files)


def _members(data: bytes, where: str) -> dict[str, bytes]:
    allowed = {MANIFEST, OBJECTS, *(FILES_PREFIX + name for name in (*PKI_FILES, *KEYRING_FILES))}
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for info in tar:
                if info.name not in allowed:
                    raise BackupError(f"{where}: {info.name!r}: not a member of a shoal backup")
                if not info.isfile() or info.size > _MAX_MEMBER:
                    raise BackupError(f"{where}: {info.name}: not a regular file of a sane size")
                if info.name in members:
                    raise BackupError(f"{where}: {info.name}: appears twice in the archive")
                member = tar.extractfile(info)
                assert member is not None  # a regular file always has a body
                members[info.name] = member.read()
    except (EOFError, zlib.error) as err:
        raise BackupError(f"{where}: the file is truncated or damaged ({err})") from None
    except (tarfile.TarError, gzip.BadGzipFile) as err:
        if data[:2] != b"\x1f\x8b":  # gzip's magic number
            raise BackupError(f"{where}: not a shoal backup (not a gzip-compressed tar archive)") from None
        raise BackupError(f"{where}: the file is truncated or damaged ({err})") from None
    return members


def _manifest(raw: bytes, where: str) -> tuple[Manifest, dict[str, str]]:
    name = f"{where}: {MANIFEST}"
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise BackupError(f"{name}: not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise BackupError(f"{name}: format is {found!r}, not {FORMAT!r}: not a shoal backup")
    version = doc.get("formatVersion")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BackupError(f"{name}: formatVersion is {version!r}, not a number")
    if version != FORMAT_VERSION:
        newer = " (written by a newer shoal: upgrade this one)" if version > FORMAT_VERSION else ""
        raise BackupError(
            f"{name}: format version {version} is not supported; shoal {__version__} reads version "
            f"{FORMAT_VERSION}{newer}"
        )
    fields: dict[str, type] = {
        "shoalVersion": str, "store": str, "created": str, "revision": int, "objects": int, "sha256": dict,
    }  # fmt: skip
    for field, kind in fields.items():
        value = doc.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BackupError(f"{name}: {field} is {value!r}, not a {kind.__name__}")
    if doc["revision"] < 0 or doc["objects"] < 0:
        raise BackupError(f"{name}: revision and objects cannot be negative")
    digests = doc["sha256"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in digests.items()):
        raise BackupError(f"{name}: sha256 maps member names to hex digests")
    manifest = Manifest(
        version, doc["shoalVersion"], doc["store"], doc["revision"], doc["objects"], doc["created"]
    )
    return manifest, digests


def _objects(raw: bytes, manifest: Manifest, where: str) -> list[KeyValue]:
    objects: list[KeyValue] = []
    seen: set[str] = set()
    for number, line in enumerate(raw.splitlines(), start=1):
        at = f"{where}: {OBJECTS} line {number}"
        try:
            doc = orjson.loads(line)
            key, value = doc["key"], base64.b64decode(doc["value"], validate=True)
            created, modified = doc["createRevision"], doc["modRevision"]
        except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error, ValueError):
            raise BackupError(f"{at}: not an object record (key, base64 value, revisions)") from None
        if not isinstance(key, str) or not key:
            raise BackupError(f"{at}: the key is {key!r}, not a non-empty string")
        if not all(isinstance(r, int) and not isinstance(r, bool) for r in (created, modified)) or not (
            0 < created <= modified <= manifest.revision
        ):
            raise BackupError(
                f"{at}: {key}: revisions {created!r}/{modified!r} do not fit the backup's revision "
                f"{manifest.revision}"
            )
        if key in seen:
            raise BackupError(f"{at}: {key} appears twice")
        seen.add(key)
        objects.append(KeyValue(key, value, created, modified))
    if len(objects) != manifest.objects:
        raise BackupError(
            f"{where}: {OBJECTS} holds {len(objects)} objects; the manifest says {manifest.objects}"
        )
    return objects
