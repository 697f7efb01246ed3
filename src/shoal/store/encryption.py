"""Encryption at rest: a ``Store`` that wraps another and encrypts the values of some keys.

``EncryptingStore(inner, keyring)`` implements the same protocol as the store it wraps
(memory, sqlite, later etcd). Values under its prefixes (Secrets by default:
``/registry/core/secrets/``) are encrypted with AES-GCM before they reach the backend and
decrypted on the way out: get, list, watch events (value and previous value), and the values
update/delete return. Revisions are the backend's, untouched, so compare-and-swap compares
revisions as before, never ciphertexts.

Envelope, as Kubernetes' ``k8s:enc:aesgcm:v1:<name>:`` prefix::

    shoal:aesgcm:v1:<key id>:<12-byte nonce><ciphertext and 16-byte tag>

The key id names the keyring key that wrote it, so several keys coexist during a rotation;
the store key is the additional authenticated data, so a ciphertext moved under another key
does not decrypt. A value without the header (written before encryption was on) is read as
it is, and re-encrypted on its next write.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag

from shoal.security.keys import LOCKED_MESSAGE, Keyring
from shoal.store._interface import Event, KeyValue, ListResult, Store, StoreError, WatchStream

HEADER = b"shoal:aesgcm:v1:"
SECRETS_PREFIX = "/registry/core/secrets/"
_NONCE = 12


class StoreLocked(StoreError):
    """The keyring is sealed (autolock) and nobody has unlocked it yet."""

    def __init__(self, key: str | None = None) -> None:
        super().__init__(LOCKED_MESSAGE, key)


class DecryptionFailed(StoreError):
    """A stored value cannot be decrypted: a key this manager lacks, or damaged bytes."""


class EncryptingStore:
    """A Store whose values under ``prefixes`` are encrypted with the keyring's write key."""

    def __init__(self, inner: Store, keyring: Keyring, prefixes: Sequence[str] = (SECRETS_PREFIX,)) -> None:
        self.inner = inner
        self.keyring = keyring
        self.prefixes = tuple(prefixes)

    # -- the envelope ------------------------------------------------------------------------

    def covers(self, key: str) -> bool:
        return key.startswith(self.prefixes)

    def encrypt(self, key: str, value: bytes) -> bytes:
        if not self.covers(key):
            return value
        keyring = self.keyring
        cipher = keyring.cipher(keyring.write_id) if not keyring.locked else None
        if cipher is None:
            raise StoreLocked(key)
        nonce = secrets.token_bytes(_NONCE)
        return b"".join(
            (HEADER, keyring.write_id.encode(), b":", nonce, cipher.encrypt(nonce, value, key.encode()))
        )

    @staticmethod
    def key_id_of(value: bytes) -> str | None:
        """The id of the key that encrypted ``value``; None for a plain value."""
        if not value.startswith(HEADER):
            return None
        end = value.find(b":", len(HEADER))
        return value[len(HEADER) : end].decode("ascii", "replace") if end > 0 else ""

    def decrypt(self, kv: KeyValue) -> KeyValue:
        value = kv.value
        if not value.startswith(HEADER) or not self.covers(kv.key):
            return kv
        if self.keyring.locked:
            raise StoreLocked(kv.key)
        end = value.find(b":", len(HEADER))
        key_id = value[len(HEADER) : end].decode("ascii", "replace") if end > 0 else ""
        cipher = self.keyring.cipher(key_id) if key_id else None
        if cipher is None:
            raise DecryptionFailed(
                f"{kv.key}: cannot decrypt: it was encrypted with key {key_id!r}, which this manager's "
                "keyring does not hold (a key removed too early, or another cluster's data)",
                kv.key,
            )
        body = value[end + 1 :]
        try:
            plain = cipher.decrypt(body[:_NONCE], body[_NONCE:], kv.key.encode())
        except (InvalidTag, ValueError):
            raise DecryptionFailed(
                f"{kv.key}: cannot decrypt: the stored value is damaged or was not written under this key",
                kv.key,
            ) from None
        return KeyValue(kv.key, plain, kv.create_revision, kv.mod_revision)

    def _decrypt_optional(self, kv: KeyValue | None) -> KeyValue | None:
        return None if kv is None else self.decrypt(kv)

    # -- the Store protocol --------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        return self._decrypt_optional(await self.inner.get(key))

    async def list(self, prefix: str, revision: int | None = None) -> ListResult:
        result = await self.inner.list(prefix, revision)
        if not self._overlaps(prefix):
            return result
        return ListResult([self.decrypt(kv) for kv in result.items], result.revision)

    async def create(self, key: str, value: bytes) -> KeyValue:
        kv = await self.inner.create(key, self.encrypt(key, value))
        return KeyValue(key, value, kv.create_revision, kv.mod_revision)

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> KeyValue:
        kv = await self.inner.update(key, self.encrypt(key, value), expected_revision)
        return KeyValue(key, value, kv.create_revision, kv.mod_revision)

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        if self.covers(key) and self.keyring.locked:
            # The delete would work, but its answer (the last value) could not be read.
            raise StoreLocked(key)
        return self.decrypt(await self.inner.delete(key, expected_revision))

    def watch(self, prefix: str, after_revision: int) -> WatchStream:
        return _DecryptingWatch(self, self.inner.watch(prefix, after_revision))

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def close(self) -> None:
        await self.inner.close()

    def _overlaps(self, prefix: str) -> bool:
        """Whether a list or watch of ``prefix`` can see covered keys."""
        return any(p.startswith(prefix) or prefix.startswith(p) for p in self.prefixes)


class _DecryptingWatch:
    def __init__(self, store: EncryptingStore, inner: WatchStream) -> None:
        self._store = store
        self._inner = inner

    def __aiter__(self) -> _DecryptingWatch:
        return self

    async def __anext__(self) -> Event:
        event = await self._inner.__anext__()
        if not self._store.covers(event.kv.key):
            return event
        store = self._store
        return Event(event.type, store.decrypt(event.kv), store._decrypt_optional(event.prev))

    async def aclose(self) -> None:
        await self._inner.aclose()
