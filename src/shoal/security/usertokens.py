"""Bearer tokens for scripts (``shoal token create --user NAME [--group G]... --ttl 1h``).

A token is shown once, when made; the cluster keeps only its sha256, in the Secret
``kube-system/shoal-user-tokens`` (one data key per digest, its value the user, groups and
expiry as JSON), so a leaked store does not leak usable tokens. Deleting the key revokes the
token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from shoal.api import REGISTRY, Object
from shoal.api.errors import AlreadyExists, Conflict, NotFound
from shoal.client._interface import Client

SECRET = REGISTRY.by_resource("", "v1", "secrets")
NAMESPACE, NAME = "kube-system", "shoal-user-tokens"
TOKEN_PREFIX = "shoal-"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    user: str
    groups: tuple[str, ...] = ()
    expires: float | None = None  # epoch seconds; None: never

    @property
    def expires_rfc3339(self) -> str:
        if self.expires is None:
            return "never"
        return datetime.fromtimestamp(self.expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def encode(self) -> str:
        return json.dumps({"user": self.user, "groups": list(self.groups), "expires": self.expires})

    @classmethod
    def decode(cls, text: str) -> TokenRecord:
        data = json.loads(text)
        return cls(str(data["user"]), tuple(data.get("groups") or ()), data.get("expires"))


def token_digest(token: str) -> str:
    """What the cluster keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def records(secret: Object) -> dict[str, TokenRecord]:
    """The token records of the Secret, by digest (entries that do not parse are skipped)."""
    out = {}
    for digest, value in (secret.get("data") or {}).items():
        try:
            out[digest] = TokenRecord.decode(base64.b64decode(value).decode())
        except (ValueError, KeyError, TypeError):
            continue
    return out


async def create_token(
    client: Client, user: str, groups: tuple[str, ...] = (), ttl: float | None = None
) -> str:
    """Make a token for ``user``, valid for ``ttl`` seconds (None: until deleted); returns it."""
    assert SECRET is not None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(user, groups, time.time() + ttl if ttl is not None else None)
    entry = {token_digest(token): base64.b64encode(record.encode().encode()).decode()}
    for _attempt in range(5):
        try:
            await client.patch(SECRET, NAME, {"data": entry}, NAMESPACE)
            return token
        except NotFound:
            try:
                await client.create(
                    SECRET,
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": NAME, "namespace": NAMESPACE},
                        "type": "Opaque",
                        "data": entry,
                    },
                )
                return token
            except AlreadyExists:
                continue
        except Conflict:
            continue
    raise Conflict("the token list changed while adding one; try again")
