"""Authentication from a request's scope: client certificates and bearer tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shoal.api.errors import Unauthorized
from shoal.security import pki
from shoal.security.authn import ANONYMOUS, Authenticator
from shoal.security.identity import AUTHENTICATED_GROUP, UserInfo
from shoal.security.usertokens import TokenRecord, token_digest

NOW = 1_800_000_000.0


def scope(cert_pem: bytes | None = None, token: str | None = None) -> dict[str, Any]:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    chain = [cert_pem.decode()] if cert_pem else []
    return {"type": "http", "headers": headers, "extensions": {"tls": {"client_cert_chain": chain}}}


@pytest.fixture(scope="module")
def ca() -> pki.CertificateAuthority:
    return pki.create_ca()


def test_a_certificate_of_the_cluster_ca_names_the_user(ca: pki.CertificateAuthority) -> None:
    issued = pki.issue_client_certificate(ca, "john", ["devs", "ops"])
    user = Authenticator(ca).authenticate(scope(issued.certificate_pem))
    assert user == UserInfo("john", ("devs", "ops", AUTHENTICATED_GROUP))


def test_refused_certificates_say_why(ca: pki.CertificateAuthority) -> None:
    issued = pki.issue_client_certificate(ca, "john")
    revoked = Authenticator(ca, revoked=lambda: frozenset({issued.serial}))
    with pytest.raises(Unauthorized, match="revoked"):
        revoked.authenticate(scope(issued.certificate_pem))
    old = pki.issue_client_certificate(
        ca, "john", lifetime=dt.timedelta(minutes=5), now=pki.utcnow() - dt.timedelta(hours=1)
    )
    with pytest.raises(Unauthorized, match="expired"):
        Authenticator(ca).authenticate(scope(old.certificate_pem))
    stranger = pki.issue_client_certificate(pki.create_ca("another"), "john")
    with pytest.raises(Unauthorized, match="not issued by this cluster's CA"):
        Authenticator(ca).authenticate(scope(stranger.certificate_pem))


def test_bearer_tokens(ca: pki.CertificateAuthority) -> None:
    records = {
        token_digest("good"): TokenRecord("ci", ("robots",), NOW + 60),
        token_digest("stale"): TokenRecord("ci", (), NOW - 1),
        token_digest("forever"): TokenRecord("ops"),
    }
    authn = Authenticator(ca, token=records.get, clock=lambda: NOW)
    assert authn.authenticate(scope(token="good")) == UserInfo("ci", ("robots", AUTHENTICATED_GROUP))
    assert authn.authenticate(scope(token="forever")).name == "ops"
    with pytest.raises(Unauthorized, match="expired at"):
        authn.authenticate(scope(token="stale"))
    with pytest.raises(Unauthorized, match="not a token of this cluster"):
        authn.authenticate(scope(token="made-up"))


def test_no_credentials_is_anonymous(ca: pki.CertificateAuthority) -> None:
    assert Authenticator(ca).authenticate(scope()) == ANONYMOUS


async def test_a_token_the_cache_has_not_seen_yet_is_looked_up_once(ca: pki.CertificateAuthority) -> None:
    stored = {
        token_digest("new"): TokenRecord("ci", ("robots",), NOW + 60),
        token_digest("old"): TokenRecord("ci", (), NOW - 1),
    }
    looked_up: list[str] = []

    async def lookup(digest: str) -> TokenRecord | None:
        looked_up.append(digest)
        return stored.get(digest)

    authn = Authenticator(ca, lookup=lookup, clock=lambda: NOW)  # an empty cache
    user = await authn.authenticate_request(scope(token="new"))
    assert user == UserInfo("ci", ("robots", AUTHENTICATED_GROUP))
    with pytest.raises(Unauthorized, match="expired at"):  # found live, still checked
        await authn.authenticate_request(scope(token="old"))
    with pytest.raises(Unauthorized, match="not a token of this cluster"):
        await authn.authenticate_request(scope(token="made-up"))
    assert looked_up == [token_digest(t) for t in ("new", "old", "made-up")]
    # Certificates and anonymous requests never wait on a lookup.
    assert await authn.authenticate_request(scope()) == ANONYMOUS
    assert len(looked_up) == 3
