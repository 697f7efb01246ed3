"""The cluster PKI: the CA on disk, the certificates it issues, CSR refusals, client
certificate verification, renewal timing and revocation."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from shoal.client.local import LocalClient
from shoal.security import pki
from shoal.server.resources import Resources
from shoal.store.memory import MemoryStore

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> pki.CertificateAuthority:
    return pki.create_ca(now=NOW - dt.timedelta(days=1))


def csr_with(key: object, subject: x509.Name) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]


def name(cn: str, *orgs: str) -> x509.Name:
    return x509.Name(
        [
            *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


# -- the CA ---------------------------------------------------------------------------------


def test_ca_is_created_once_then_loaded(tmp_path: Path) -> None:
    made = pki.load_or_create_ca(tmp_path / "pki")
    cert = made.certificate
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(cert.public_key().curve, ec.SECP256R1)  # type: ignore[union-attr]
    assert cert.issuer == cert.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE(os.stat(tmp_path / "pki" / "ca.key").st_mode) == 0o600
    assert not [p for p in (tmp_path / "pki").iterdir() if p.name.endswith(".tmp")]

    loaded = pki.load_or_create_ca(tmp_path / "pki")
    assert loaded.certificate == cert and loaded.digest == made.digest


def test_half_a_ca_is_not_replaced(tmp_path: Path) -> None:
    pki.load_or_create_ca(tmp_path)
    (tmp_path / "ca.key").unlink()
    with pytest.raises(pki.CertificateError, match=r"ca\.key does not: refusing to make a new cluster CA"):
        pki.load_or_create_ca(tmp_path)


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path: Path) -> None:
    pki.load_or_create_ca(tmp_path)
    (tmp_path / "ca.key").write_bytes(pki.key_pem(pki.new_key()))
    with pytest.raises(pki.CertificateError, match="is not the key of"):
        pki.load_or_create_ca(tmp_path)


def test_digest_is_sha256_of_der(ca: pki.CertificateAuthority) -> None:
    der = ca.certificate.public_bytes(serialization.Encoding.DER)
    assert pki.ca_digest(ca.certificate) == hashlib.sha256(der).hexdigest() == ca.digest
    assert len(ca.digest) == 64


# -- issued certificates --------------------------------------------------------------------


def test_server_certificate_names_its_hosts(ca: pki.CertificateAuthority) -> None:
    issued = pki.issue_server_certificate(ca, ["10.0.0.5", "manager.example", "0.0.0.0"], now=NOW)
    cert = issued.certificate
    assert pki.san_hosts(cert) == {"10.0.0.5", "manager.example", "localhost", "127.0.0.1"}
    cert.verify_directly_issued_by(ca.certificate)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert cert.not_valid_after_utc - NOW == pki.DEFAULT_LIFETIME


def test_server_certificate_file_is_reissued_for_new_hosts(
    tmp_path: Path, ca: pki.CertificateAuthority
) -> None:
    first = pki.ensure_server_certificate(ca, tmp_path, ["127.0.0.1"])
    assert pki.ensure_server_certificate(ca, tmp_path, ["127.0.0.1"]).serial == first.serial
    second = pki.ensure_server_certificate(ca, tmp_path, ["10.1.2.3"])
    assert second.serial != first.serial and "10.1.2.3" in pki.san_hosts(second.certificate)


def test_admin_and_user_client_certificates(tmp_path: Path, ca: pki.CertificateAuthority) -> None:
    admin = pki.ensure_admin_certificate(ca, tmp_path)
    identity = pki.verify_client_certificate(ca, admin.certificate_pem)
    assert identity == pki.Identity("admin", ("system:masters",), admin.serial)
    assert stat.S_IMODE(os.stat(tmp_path / "admin.key").st_mode) == 0o600
    assert pki.ensure_admin_certificate(ca, tmp_path).serial == admin.serial  # kept

    user = pki.issue_client_certificate(ca, "john", ["dev", "ops"], dt.timedelta(hours=1), now=NOW)
    assert pki.verify_client_certificate(ca, user.certificate, NOW).groups == ("dev", "ops")
    der = user.certificate.public_bytes(serialization.Encoding.DER)
    assert pki.verify_client_certificate(ca, der, NOW).name == "john"


def test_lifetime_is_configurable_down_to_a_minute(ca: pki.CertificateAuthority) -> None:
    short = pki.issue_client_certificate(ca, "x", lifetime=dt.timedelta(minutes=2), now=NOW)
    assert short.certificate.not_valid_after_utc - NOW == dt.timedelta(minutes=2)
    with pytest.raises(ValueError, match="too short"):
        pki.issue_client_certificate(ca, "x", lifetime=dt.timedelta(seconds=30), now=NOW)


# -- CSRs -----------------------------------------------------------------------------------


def test_node_csr_is_signed_as_the_node(ca: pki.CertificateAuthority) -> None:
    key = pki.new_key()
    issued = pki.sign_node_csr(ca, pki.make_csr(key, "node-2"), "node-2", dt.timedelta(minutes=10), now=NOW)
    assert issued.key is None  # the key stayed with the node
    assert issued.certificate.public_key() == key.public_key()
    identity = pki.verify_client_certificate(ca, issued.certificate, NOW)
    assert identity.name == "node-2" and identity.groups == ("shoal:nodes",)
    # a CSR without an O gets shoal:nodes all the same
    bare = pki.sign_node_csr(ca, csr_with(pki.new_key(), name("node-2")), "node-2", now=NOW)
    assert pki.identity_of(bare.certificate).groups == ("shoal:nodes",)
    rsa_key = rsa.generate_private_key(65537, 2048)
    assert pki.sign_node_csr(ca, csr_with(rsa_key, name("node-2")), "node-2", now=NOW).serial


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: pki.make_csr(pki.new_key(), "node-3"), pki.CsrForbidden, "CSR subject CN: 'node-3' is not"),
        (
            lambda: pki.make_csr(pki.new_key(), "node-2", ("system:masters",)),
            pki.CsrForbidden,
            "CSR subject O: 'system:masters' refused",
        ),
        (
            lambda: pki.make_csr(pki.new_key(), "node-2", ("shoal:nodes", "admins")),
            pki.CsrForbidden,
            "CSR subject O: 'admins' refused",
        ),
        (
            lambda: csr_with(rsa.generate_private_key(65537, 1024), name("node-2")),
            pki.CsrRefused,
            "CSR public key: RSA 1024 bits is too weak",
        ),
        (
            lambda: csr_with(ec.generate_private_key(ec.SECP384R1()), name("node-2")),
            pki.CsrRefused,
            "CSR public key: EC curve secp384r1 is not accepted",
        ),
        (
            lambda: csr_with(ed25519.Ed25519PrivateKey.generate(), name("node-2")),
            pki.CsrRefused,
            "CSR public key: Ed25519PublicKey is not accepted",
        ),
        (lambda: b"A" * (17 * 1024), pki.CsrRefused, "CSR: 17408 bytes is too large"),
        (
            lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nbm9wZQ==\n-----END CERTIFICATE REQUEST-----\n",
            pki.CsrRefused,
            "CSR: not a PEM certificate signing request",
        ),
        (lambda: "not pem at all", pki.CsrRefused, "CSR: not a PEM"),
    ],
    ids=[
        "other-node",
        "masters",
        "extra-group",
        "rsa-1024",
        "p384",
        "ed25519",
        "oversized",
        "bad-der",
        "not-pem",
    ],
)
def test_node_csr_refusals(
    ca: pki.CertificateAuthority, make: object, error: type[Exception], message: str
) -> None:
    csr = make()  # type: ignore[operator]
    with pytest.raises(error, match=message.replace("(", r"\(")):
        pki.sign_node_csr(ca, csr, "node-2", now=NOW)


def test_a_csr_with_a_broken_signature_is_refused(ca: pki.CertificateAuthority) -> None:
    pem = pki.make_csr(pki.new_key(), "node-2")
    csr = x509.load_pem_x509_csr(pem)
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0xFF  # inside the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(pki.CsrRefused, match="CSR signature: invalid"):
        pki.sign_node_csr(ca, tampered, "node-2", now=NOW)


# -- verification ---------------------------------------------------------------------------


def test_expired_and_not_yet_valid_are_refused(ca: pki.CertificateAuthority) -> None:
    cert = pki.issue_client_certificate(ca, "u", lifetime=dt.timedelta(hours=1), now=NOW).certificate
    pki.verify_client_certificate(ca, cert, NOW + dt.timedelta(minutes=30))
    with pytest.raises(pki.CertificateError, match="expired: notAfter was"):
        pki.verify_client_certificate(ca, cert, NOW + dt.timedelta(hours=2))
    with pytest.raises(pki.CertificateError, match="is not yet valid: notBefore is"):
        pki.verify_client_certificate(ca, cert, NOW - dt.timedelta(hours=1))


def test_self_signed_and_other_ca_are_refused(ca: pki.CertificateAuthority) -> None:
    other = pki.create_ca("another-ca", now=NOW - dt.timedelta(days=1))
    with pytest.raises(pki.CertificateError, match="self-signed"):
        pki.verify_client_certificate(ca, other.certificate, NOW)
    foreign = pki.issue_client_certificate(other, "admin", ["system:masters"], now=NOW).certificate
    with pytest.raises(pki.CertificateError, match="not issued by this cluster's CA"):
        pki.verify_client_certificate(ca, foreign, NOW)
    # same subject as the real CA, different key: still refused
    impostor = pki.create_ca("shoal-root-ca", now=NOW - dt.timedelta(days=1))
    forged = pki.issue_client_certificate(impostor, "admin", ["system:masters"], now=NOW).certificate
    with pytest.raises(pki.CertificateError, match="not issued by this cluster's CA"):
        pki.verify_client_certificate(ca, forged, NOW)


def test_server_only_certificate_is_no_client_certificate(ca: pki.CertificateAuthority) -> None:
    server = pki.issue_server_certificate(ca, ["127.0.0.1"], now=NOW).certificate
    with pytest.raises(pki.CertificateError, match="not made for client authentication"):
        pki.verify_client_certificate(ca, server, NOW)


def test_malformed_and_oversized_certificates_are_refused(ca: pki.CertificateAuthority) -> None:
    with pytest.raises(pki.CertificateError, match=r"not a PEM or DER X\.509 certificate"):
        pki.verify_client_certificate(
            ca, b"-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n", NOW
        )
    with pytest.raises(pki.CertificateError, match="too large"):
        pki.verify_client_certificate(ca, b"\x30" * 20000, NOW)


def test_revoked_serial_is_refused(ca: pki.CertificateAuthority) -> None:
    issued = pki.issue_client_certificate(ca, "u", now=NOW)
    with pytest.raises(pki.CertificateError, match=f"serial {issued.serial:x}\\) was revoked"):
        pki.verify_client_certificate(ca, issued.certificate, NOW, {issued.serial})


# -- renewal --------------------------------------------------------------------------------


def test_renewal_when_a_third_of_the_lifetime_is_left(ca: pki.CertificateAuthority) -> None:
    cert = pki.issue_client_certificate(ca, "n", lifetime=dt.timedelta(minutes=30), now=NOW).certificate
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    due = pki.renewal_time(cert)
    assert end - due == (end - start) / 3
    assert not pki.needs_renewal(cert, NOW)
    assert not pki.needs_renewal(cert, due - dt.timedelta(seconds=1))
    assert pki.needs_renewal(cert, due + dt.timedelta(seconds=1))
    assert pki.needs_renewal(cert, end + dt.timedelta(days=1))
    ninety = pki.issue_client_certificate(ca, "n", now=NOW).certificate
    assert not pki.needs_renewal(ninety, NOW + dt.timedelta(days=59))
    assert pki.needs_renewal(ninety, NOW + dt.timedelta(days=61))


# -- revocation list ------------------------------------------------------------------------


async def test_revocation_list_in_the_store() -> None:
    resources = Resources(MemoryStore())
    await resources.bootstrap()
    client = LocalClient(resources)
    assert await pki.revoked_serials(client) == frozenset()
    assert not await pki.is_revoked(client, 0xABC)
    await pki.revoke(client, 0xABC, "node gone")
    await pki.revoke(client, 0xDEF)
    assert await pki.revoked_serials(client) == {0xABC, 0xDEF}
    assert await pki.is_revoked(client, 0xABC)
    listed = await client.get(pki.CONFIG_MAP, pki.REVOKED_NAME, pki.REVOKED_NAMESPACE)  # type: ignore[arg-type]
    assert listed["data"]["abc"].startswith("revoked ") and listed["data"]["abc"].endswith("node gone")
