"""Who is asking: a request's user from its client certificate or its bearer token.

- A client certificate (``security.tls`` puts it in the scope) issued by the cluster CA, valid
  now and not revoked: the user is its CN, its groups the O entries (nodes: CN = node name,
  O = ``shoal:nodes``; the admin: O = ``system:masters``). The TLS handshake already refused
  certificates of other CAs and expired ones; this checks again (a long connection may outlive
  a certificate) and checks revocation, which the handshake cannot.
- ``Authorization: Bearer <token>``: a token made by ``shoal token create --user`` (its hash
  is looked up; the token itself is stored nowhere).
- Neither: ``system:anonymous`` in ``system:unauthenticated``, which authorization refuses
  everything but what is open to all (the join exchange, health).

A certificate or token that is presented but not good is a 401 that says why: a client that
tried to be someone must not silently become anonymous.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from shoal.api.errors import Unauthorized
from shoal.security.identity import AUTHENTICATED_GROUP, UserInfo
from shoal.security.pki import CertificateAuthority, CertificateError, verify_client_certificate
from shoal.security.tls import client_certificate
from shoal.security.usertokens import TokenRecord, token_digest

ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))
USER_SCOPE_KEY = "shoal.user"  # where the authenticated UserInfo goes in the request's scope


def _bearer(scope: Mapping[str, Any]) -> str | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"authorization":
            text: str = bytes(value).decode("latin-1")
            scheme, _, credential = text.partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                return credential.strip()
    return None


class Authenticator:
    """Args:
    ca: the cluster CA, whose certificates are the only ones accepted.
    revoked: the revoked serial numbers now (a cache kept by a watch).
    token: the record of a token's sha256, or None.
    clock: epoch seconds (tests move it).
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        *,
        revoked: Callable[[], frozenset[int]] = frozenset,
        token: Callable[[str], TokenRecord | None] = lambda _digest: None,
        lookup: Callable[[str], Awaitable[TokenRecord | None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ca = ca
        self.revoked = revoked
        self.token = token
        self.lookup = lookup
        self.clock = clock

    async def authenticate_request(self, scope: Mapping[str, Any]) -> UserInfo:
        """``authenticate``, and for a bearer token the cache does not know yet, one live read
        (``lookup``) before refusing it: a token used right after ``shoal token create`` is
        accepted even before this manager's cache has seen it (with several managers, the
        creating one may not be this one)."""
        try:
            return self.authenticate(scope)
        except UnknownToken as unknown:
            record = await self.lookup(unknown.digest) if self.lookup is not None else None
            if record is None:
                raise
            return self._token_user(record)

    def authenticate(self, scope: Mapping[str, Any]) -> UserInfo:
        """The request's user. Raises Unauthorized for a bad certificate or token."""
        pem = client_certificate(scope)
        if pem is not None:
            try:
                identity = verify_client_certificate(self.ca, pem, revoked=self.revoked())
            except CertificateError as err:
                raise Unauthorized(f"client certificate refused: {err}") from None
            return UserInfo(identity.name, (*identity.groups, AUTHENTICATED_GROUP))
        bearer = _bearer(scope)
        if bearer is not None:
            digest = token_digest(bearer)
            record = self.token(digest)
            if record is None:
                raise UnknownToken(digest)
            return self._token_user(record)
        return ANONYMOUS

    def _token_user(self, record: TokenRecord) -> UserInfo:
        if record.expires is not None and self.clock() >= record.expires:
            raise Unauthorized(f"bearer token refused: it expired at {record.expires_rfc3339}")
        return UserInfo(record.user, (*record.groups, AUTHENTICATED_GROUP))


class UnknownToken(Unauthorized):
    """A bearer token no record of this cluster has the digest of."""

    def __init__(self, digest: str) -> None:
        super().__init__("bearer token refused: it is not a token of this cluster (or it was deleted)")
        self.digest = digest
