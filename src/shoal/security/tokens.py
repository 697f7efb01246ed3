"""Join tokens: what a machine shows to join the cluster, one per role (worker, manager).

The format is Swarm's: ``SHOAL-1-<CA digest>-<secret>``, where the digest is the sha256 (hex) of
the cluster CA's DER certificate and the secret 32 random hex characters. The digest lets the
JOINING side check the manager it reached before trusting it (``security.join``): a manager
whose CA does not hash to it is not the cluster the token belongs to. The secret is what the
manager checks (in constant time) before signing the node's certificate.

Tokens are kept whole in the Secret ``kube-system/shoal-join-tokens`` (one key per role),
made by the API server when it starts (``ensure``: it knows the CA, and gives existing tokens
its digest should the CA have changed), shown by ``shoal token show`` and replaced by
``shoal token rotate``: a rotated token stops working at once; nodes that joined stay.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass

from shoal.api import REGISTRY, Object
from shoal.api.errors import AlreadyExists, Conflict, NotFound, ServiceUnavailable, Unauthorized
from shoal.client._interface import Client

SECRET = REGISTRY.by_resource("", "v1", "secrets")
NAMESPACE, NAME = "kube-system", "shoal-join-tokens"
ROLES = ("worker", "manager")
PREFIX = "SHOAL-1-"
_FORMAT = re.compile(r"^SHOAL-1-([0-9a-f]{64})-([0-9a-f]{32})$")


@dataclass(frozen=True)
class JoinToken:
    digest: str  # sha256 of the CA certificate (DER), hex
    secret: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.digest}-{self.secret}"


def parse(token: str) -> JoinToken:
    """The parts of ``token``; ValueError (saying what is wrong) when it is not one."""
    token = token.strip()
    match = _FORMAT.match(token)
    if match is None:
        if not token.startswith(PREFIX):
            raise ValueError(f"the join token is malformed: it starts with {PREFIX}")
        raise ValueError(
            "the join token is malformed: expected SHOAL-1-<64 hex digits of CA digest>-<32 hex digits "
            "of secret> (`shoal token show` on a manager prints it)"
        )
    return JoinToken(match.group(1), match.group(2))


def new_token(digest: str) -> JoinToken:
    return JoinToken(digest, secrets.token_hex(16))


def _read(secret: Object) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


async def ensure(client: Client, digest: str) -> dict[str, str]:
    """The current token of each role, made the first time; tokens whose digest is not
    ``digest`` (the CA changed) or that are not in the current format get a new one. What the
    API server does when it starts."""
    assert SECRET is not None
    for _attempt in range(5):
        try:
            stored = await client.get(SECRET, NAME, NAMESPACE)
        except NotFound:
            fresh = {role: str(new_token(digest)) for role in ROLES}
            try:
                await client.create(SECRET, _secret(fresh))
                return fresh
            except AlreadyExists:  # another manager made them first
                continue
        current = _read(stored)
        wanted = dict(current)
        for role in ROLES:
            try:
                token = parse(current.get(role, ""))
                if token.digest != digest:
                    wanted[role] = str(JoinToken(digest, token.secret))
            except ValueError:
                wanted[role] = str(new_token(digest))
        if wanted == current:
            return current
        updated = _secret(wanted)
        updated["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
        try:
            await client.update(SECRET, updated)
        except Conflict:
            continue
        return wanted
    raise Conflict("the join tokens changed while they were being made; try again")


async def tokens(client: Client) -> dict[str, str]:
    """The current token of each role (the API server makes them when it starts)."""
    assert SECRET is not None
    try:
        return _read(await client.get(SECRET, NAME, NAMESPACE))
    except NotFound:
        raise ServiceUnavailable(
            "the cluster has no join tokens yet: the manager makes them when it starts"
        ) from None


async def rotate(client: Client, role: str) -> str:
    """Replace the token of ``role`` (same CA digest, new secret); the old one is refused
    from now on."""
    assert SECRET is not None
    if role not in ROLES:
        raise ValueError(f"unknown token role {role!r}; roles: {', '.join(ROLES)}")
    for _attempt in range(5):
        secret = await client.get(SECRET, NAME, NAMESPACE)
        current = _read(secret)
        digests = {parse(t).digest for t in current.values() if _FORMAT.match(t)}
        if len(digests) != 1:
            raise ServiceUnavailable("the join tokens carry no single CA digest; restart the manager")
        token = str(new_token(digests.pop()))
        updated = _secret({**current, role: token})
        updated["metadata"]["resourceVersion"] = secret["metadata"]["resourceVersion"]
        try:
            await client.update(SECRET, updated)
        except Conflict:
            continue
        return token
    raise Conflict("the join tokens changed while rotating; try again")


async def role_of(client: Client, presented_secret: str) -> str:
    """The role whose current token has ``presented_secret`` as its secret; Unauthorized
    otherwise. Every role is compared, in constant time, whatever matches first."""
    current = await tokens(client)
    presented = presented_secret.encode()
    found = ""
    for role in ROLES:
        try:
            expected = parse(current.get(role, "")).secret.encode()
        except ValueError:
            continue
        if hmac.compare_digest(expected, presented) and not found:
            found = role
    if not found:
        raise Unauthorized(
            "the join token was refused: its secret is not that of this cluster's current worker or "
            "manager token (it may have been rotated; `shoal token show` on a manager prints the "
            "current one)"
        )
    return found


def _secret(values: dict[str, str]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"shoal.io/component": "join-tokens"}},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }
