"""The cluster key that encrypts Secrets at rest, its rotation, and Swarm-style autolock.

The keyring lives in ``<data dir>/keys/`` (folder 0700, files 0600, written atomically):

- ``cluster-keys.json``: the keys in plain form, ``{"version": 1, "write": ID, "keys":
  {ID: base64}}``; the write key encrypts, every key listed decrypts (several coexist
  during a rotation);
- ``cluster-keys.sealed`` instead, with autolock (``shoal init --autolock``): the same JSON
  sealed with AES-GCM under a key derived (HKDF-SHA256) from a random operator key printed
  once, ``SHOALKEY-1-<base64>``. After a restart the manager starts *locked*: Secrets cannot
  be read or written until the operator gives that key (``shoal unlock``, which POSTs it to
  ``/shoal/v1/unlock``); every other object keeps working.

Rotation (``shoal secret-key rotate``) runs against the data dir of a stopped manager (the
sqlite store has one owner, and a running manager would keep the old keyring in memory): a
new key becomes the write key and is saved beside the old ones, every Secret is rewritten
through the store with compare-and-swap, and only when no value uses an old key are the old
keys dropped. A rotation cut short resumes: a keyring holding several keys is an unfinished
rotation, and running the command again finishes it instead of starting another.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import inspect
import secrets
import sys
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shoal.api.errors import BadRequest, NotFound, Unauthorized
from shoal.security import pki

if TYPE_CHECKING:
    from shoal.store import Store
    from shoal.store.encryption import EncryptingStore

KEY_DIR = "keys"
PLAIN_FILE = "cluster-keys.json"
SEALED_FILE = "cluster-keys.sealed"
UNLOCK_KEY_PREFIX = "SHOALKEY-1-"
LOCKED_MESSAGE = "the cluster is locked: run `shoal unlock`"
_SEAL_SCHEME = "shoal:seal:aesgcm:v1"
_SEAL_INFO = b"shoal unlock key v1"
_SEAL_AAD = b"shoal cluster keys"


class KeyringError(Exception):
    """The keyring cannot be read or used; the message says why."""


class WrongUnlockKey(KeyringError):
    """The unlock key given does not open the sealed keyring."""


@dataclass
class Keyring:
    """The cluster's data keys. ``locked``: sealed and not yet unlocked (no key usable)."""

    directory: Path
    keys: dict[str, bytes] = field(default_factory=dict)
    write_id: str = ""
    sealed: bytes | None = None  # the sealed file's bytes, with autolock
    _operator_key: bytes | None = field(default=None, repr=False)  # after unlock: to re-seal
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, repr=False)
    _unlocked: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        if not self.locked:
            self._unlocked.set()

    @property
    def locked(self) -> bool:
        return not self.keys

    @property
    def autolock(self) -> bool:
        return self.sealed is not None

    def cipher(self, key_id: str) -> AESGCM | None:
        """The AES-GCM cipher of ``key_id``, or None if this keyring does not hold it."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            secret = self.keys.get(key_id)
            if secret is None:
                return None
            cipher = self._ciphers[key_id] = AESGCM(secret)
        return cipher

    def unlock(self, operator_key: str) -> bool:
        """Open the sealed keyring with the operator's key. True if it was locked; False if it
        was already open (the key is checked all the same). Raises WrongUnlockKey."""
        if self.sealed is None:
            raise KeyringError("this cluster has no autolock: there is nothing to unlock")
        raw = parse_unlock_key(operator_key)
        keys, write_id = _unseal(self.sealed, raw)
        if not self.locked:
            return False
        self.keys, self.write_id, self._operator_key = keys, write_id, raw
        self._unlocked.set()
        return True

    async def wait_unlocked(self) -> None:
        await self._unlocked.wait()

    def add_write_key(self) -> str:
        key_id = _new_key_id(self.keys)
        self.keys = {key_id: AESGCM.generate_key(bit_length=256), **self.keys}
        self.write_id = key_id
        self._unlocked.set()
        return key_id

    def drop_old_keys(self) -> list[str]:
        old = [k for k in self.keys if k != self.write_id]
        self.keys = {self.write_id: self.keys[self.write_id]}
        for key_id in old:
            self._ciphers.pop(key_id, None)
        return old

    def save(self) -> None:
        """Write the keyring (sealed again under the same operator key with autolock)."""
        if self.locked:
            raise KeyringError(LOCKED_MESSAGE)
        plain = _encode(self.keys, self.write_id)
        if self.sealed is None:
            pki.write_atomic(self.directory / PLAIN_FILE, plain, 0o600)
            return
        assert self._operator_key is not None
        self.sealed = _seal(plain, self._operator_key)
        pki.write_atomic(self.directory / SEALED_FILE, self.sealed, 0o600)


def load_or_create(data_dir: Path, *, autolock: bool = False) -> tuple[Keyring, str | None]:
    """The keyring of ``data_dir``, created the first time. Returns the new operator unlock
    key when this call turned autolock on (print it once: it is stored nowhere), else None.

    A sealed keyring comes back locked. ``autolock`` on a keyring that is not sealed seals
    it (as ``docker swarm update --autolock=true``); turning autolock off is not offered."""
    directory = data_dir / KEY_DIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    sealed_path, plain_path = directory / SEALED_FILE, directory / PLAIN_FILE
    if sealed_path.exists():
        return Keyring(directory, sealed=sealed_path.read_bytes()), None
    if plain_path.exists():
        keys, write_id = _decode(plain_path.read_bytes(), str(plain_path))
        keyring = Keyring(directory, keys, write_id)
    else:
        keyring = Keyring(directory)
        keyring.add_write_key()
        if not autolock:
            keyring.save()
    if not autolock:
        return keyring, None
    raw = secrets.token_bytes(32)
    keyring._operator_key = raw
    keyring.sealed = b""  # marks it sealed; save() fills it
    keyring.save()
    with contextlib.suppress(FileNotFoundError):
        plain_path.unlink()
    return keyring, UNLOCK_KEY_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def announce_unlock_key(key: str) -> None:
    """Print the operator's unlock key, once, where the operator sees it (as Swarm does)."""
    sys.stdout.write(
        "autolock is on: this manager's secrets are sealed. After a restart, run `shoal unlock`\n"
        "and give this key. Keep it in a password manager: it is shown only this once.\n\n"
        f"    {key}\n\n"
    )
    sys.stdout.flush()


def parse_unlock_key(text: str) -> bytes:
    text = text.strip()
    if not text.startswith(UNLOCK_KEY_PREFIX):
        raise WrongUnlockKey(
            f"an unlock key starts with {UNLOCK_KEY_PREFIX} (as printed by `shoal init --autolock`)"
        )
    body = text[len(UNLOCK_KEY_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise WrongUnlockKey("the unlock key is malformed: it is not the one `shoal init --autolock` printed")
    return raw


# -- rotation -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rotation:
    key_id: str
    reencrypted: int
    removed: list[str]
    resumed: bool


async def rotate(store: EncryptingStore) -> Rotation:
    """Make a new write key, re-encrypt every covered value with it (compare-and-swap, a
    value changed meanwhile is read again), then drop the old keys. Resumable."""
    from shoal.store import KeyNotFound, RevisionMismatch

    keyring = store.keyring
    if keyring.locked:
        raise KeyringError(LOCKED_MESSAGE)
    resumed = len(keyring.keys) > 1
    if not resumed:
        keyring.add_write_key()
        keyring.save()  # first: every value written from now on can be read back
    count = 0
    for prefix in store.prefixes:
        for raw in (await store.inner.list(prefix)).items:
            kv = raw
            for _attempt in range(16):
                if store.key_id_of(kv.value) == keyring.write_id:
                    break
                plain = store.decrypt(kv)
                try:
                    await store.update(kv.key, plain.value, expected_revision=kv.mod_revision)
                    count += 1
                    break
                except RevisionMismatch:
                    fresh = await store.inner.get(kv.key)
                    if fresh is None:
                        break
                    kv = fresh
                except KeyNotFound:
                    break
            else:
                raise KeyringError(f"{kv.key} kept changing while it was being re-encrypted; run again")
    for prefix in store.prefixes:
        for kv in (await store.inner.list(prefix)).items:
            if store.key_id_of(kv.value) not in (None, keyring.write_id):
                raise KeyringError(f"{kv.key} still uses an old key; run the rotation again")
    removed = keyring.drop_old_keys()
    keyring.save()
    return Rotation(keyring.write_id, count, removed, resumed)


# -- the unlock endpoint ----------------------------------------------------------------------


async def unlock_request(store: Store, body: bytes) -> dict[str, Any]:
    """``POST /shoal/v1/unlock`` with ``{"unlockKey": "SHOALKEY-1-..."}``: the Status to
    answer. A wrong key is a 401 and changes nothing."""
    from shoal.store.encryption import EncryptingStore

    if not isinstance(store, EncryptingStore) or not store.keyring.autolock:
        raise NotFound("this manager has no autolock: there is nothing to unlock")
    try:
        data = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        data = None
    key = data.get("unlockKey") if isinstance(data, dict) else None
    if not isinstance(key, str) or not key:
        raise BadRequest('an unlock request is a JSON object {"unlockKey": "SHOALKEY-1-..."}')
    try:
        opened = store.keyring.unlock(key)
    except WrongUnlockKey as err:
        raise Unauthorized(f"the cluster stays locked: {err}") from None
    message = "the cluster is unlocked" if opened else "the cluster was not locked (the key is right)"
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "message": message}


# -- files -------------------------------------------------------------------------------------


def _new_key_id(existing: dict[str, bytes]) -> str:
    while True:
        key_id = secrets.token_hex(4)
        if key_id not in existing:
            return key_id


def _encode(keys: dict[str, bytes], write_id: str) -> bytes:
    return orjson.dumps(
        {"version": 1, "write": write_id, "keys": {k: base64.b64encode(v).decode() for k, v in keys.items()}}
    )


def _decode(data: bytes, where: str) -> tuple[dict[str, bytes], str]:
    try:
        doc = orjson.loads(data)
        keys = {str(k): base64.b64decode(v, validate=True) for k, v in doc["keys"].items()}
        write_id = str(doc["write"])
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, binascii.Error, ValueError):
        raise KeyringError(f"{where}: not a shoal keyring (damaged?)") from None
    if write_id not in keys or any(len(v) != 32 for v in keys.values()):
        raise KeyringError(f"{where}: the keyring is inconsistent (damaged?)")
    return keys, write_id


def _sealing_key(operator_key: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_SEAL_INFO).derive(operator_key)
    return AESGCM(derived)


def _seal(plain: bytes, operator_key: bytes) -> bytes:
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    sealed = _sealing_key(operator_key, salt).encrypt(nonce, plain, _SEAL_AAD)
    return orjson.dumps(
        {
            "version": 1,
            "scheme": _SEAL_SCHEME,
            "salt": base64.b64encode(salt).decode(),
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(sealed).decode(),
        }
    )


def _unseal(sealed: bytes, operator_key: bytes) -> tuple[dict[str, bytes], str]:
    try:
        doc = orjson.loads(sealed)
        if doc.get("scheme") != _SEAL_SCHEME:
            raise KeyringError(f"the sealed keyring uses an unknown scheme {doc.get('scheme')!r}")
        salt, nonce, ciphertext = (base64.b64decode(doc[k]) for k in ("salt", "nonce", "ciphertext"))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, binascii.Error, ValueError):
        raise KeyringError("the sealed keyring is damaged") from None
    try:
        plain = _sealing_key(operator_key, salt).decrypt(nonce, ciphertext, _SEAL_AAD)
    except InvalidTag:
        raise WrongUnlockKey("the unlock key is wrong: it does not open this cluster's keys") from None
    return _decode(plain, "the sealed keyring")


async def until_unlocked(store: Store, stopped: Awaitable[None]) -> bool:
    """Wait until ``store`` can read Secrets (at once unless it is a locked EncryptingStore)
    or ``stopped`` finishes; True if unlocked."""
    from shoal.store.encryption import EncryptingStore

    if not isinstance(store, EncryptingStore) or not store.keyring.locked:
        if inspect.iscoroutine(stopped):
            stopped.close()
        return True
    unlocked = asyncio.ensure_future(store.keyring.wait_unlocked())
    ended = asyncio.ensure_future(stopped)
    try:
        await asyncio.wait((unlocked, ended), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (unlocked, ended):
            task.cancel()
    return not store.keyring.locked
