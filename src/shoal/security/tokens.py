"""Join tokens: the secret a machine shows to join the cluster as a worker.

A token is random, kept in the Secret ``kube-system/shoal-join-tokens`` (encrypted at rest
once the security work lands), shown to operators by ``shoal token show`` and replaced by
``shoal token rotate``: a rotated token stops working at once. The format
``SHOAL-1-<secret>`` leaves room for Swarm's CA digest, which the security work adds
between the version and the secret so that a joining node can check the manager it reaches.
"""

from __future__ import annotations

import base64
import hmac
import secrets

from shoal.api import REGISTRY, Object
from shoal.api.errors import AlreadyExists, Conflict, NotFound, Unauthorized
from shoal.client._interface import Client

SECRET = REGISTRY.by_resource("", "v1", "secrets")
NAMESPACE, NAME = "kube-system", "shoal-join-tokens"
ROLES = ("worker",)
PREFIX = "SHOAL-1-"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(24)


async def tokens(client: Client) -> dict[str, str]:
    """The current token of each role, creating them the first time."""
    assert SECRET is not None
    try:
        secret = await client.get(SECRET, NAME, NAMESPACE)
    except NotFound:
        fresh = {role: new_token() for role in ROLES}
        try:
            secret = await client.create(SECRET, _secret(fresh))
        except AlreadyExists:  # another manager made them first
            secret = await client.get(SECRET, NAME, NAMESPACE)
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


async def rotate(client: Client, role: str) -> str:
    """Replace the token of ``role``; the old one is refused from now on."""
    assert SECRET is not None
    if role not in ROLES:
        raise ValueError(f"unknown token role {role!r}; roles: {', '.join(ROLES)}")
    for _attempt in range(5):
        current = await tokens(client)
        secret = await client.get(SECRET, NAME, NAMESPACE)
        token = new_token()
        updated = _secret({**current, role: token})
        updated["metadata"]["resourceVersion"] = secret["metadata"]["resourceVersion"]
        try:
            await client.update(SECRET, updated)
        except Conflict:
            continue
        return token
    raise Conflict("the join tokens changed while rotating; try again")


async def verify(client: Client, role: str, presented: str) -> None:
    """Raise Unauthorized unless ``presented`` is the current token of ``role``."""
    expected = (await tokens(client)).get(role, "")
    if not presented.startswith(PREFIX):
        raise Unauthorized(f"the join token is malformed: a {role} token starts with {PREFIX}")
    if not expected or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise Unauthorized(
            f"the join token was refused: it is not this cluster's current {role} token "
            "(it may have been rotated; `shoal token show` on a manager prints the current one)"
        )


def _secret(values: dict[str, str]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"shoal.io/component": "join-tokens"}},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }
