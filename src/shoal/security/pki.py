"""The cluster's public key infrastructure: a root CA and the certificates it signs.

One root CA per cluster (ECDSA P-256, self-signed, ten years), kept in ``<data dir>/pki/ca.crt``
and ``ca.key`` (the key readable by its owner only, every file written atomically). It signs:

- the manager's serving certificate (``issue_server_certificate``: the addresses it listens on,
  plus localhost and 127.0.0.1);
- client certificates (``issue_client_certificate``): the admin (CN=admin, O=system:masters),
  users, and nodes, whose identity is the subject: CN is the user name, each O a group, as in
  Kubernetes;
- nodes' certificate signing requests (``sign_node_csr``): CN = the node's name, O = ``shoal:nodes``,
  the node's key generated on the node and never sent.

Certificates live ``DEFAULT_LIFETIME`` (90 days) unless told otherwise (down to a minute, so a
test can watch a rotation), and are renewed once less than a third of their lifetime is left
(``needs_renewal``), roughly what the kubelet and Swarm do.

Revocation is a set of serial numbers in the ConfigMap ``kube-system/shoal-revoked-certificates``
(``revoke``, ``revoked_serials``); ``verify_client_certificate`` is what the TLS layer calls on
each client certificate: CA signature, validity window, revocation, and the identity it carries.

Every refusal raises ``CertificateError`` (or its subclass ``CsrRefused``) with a message that
names the field at fault.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.api import Object
from shoal.api.errors import AlreadyExists, Conflict, NotFound
from shoal.api.kinds import CONFIG_MAP
from shoal.client._interface import Client

DEFAULT_LIFETIME = dt.timedelta(days=90)
CA_LIFETIME = dt.timedelta(days=3650)
ADMIN_LIFETIME = dt.timedelta(days=365)
MIN_LIFETIME = dt.timedelta(minutes=1)
CLOCK_SKEW = dt.timedelta(minutes=5)  # certificates start this much before "now"
MAX_PEM_BYTES = 16 * 1024

NODES_GROUP = "shoal:nodes"
MASTERS_GROUP = "system:masters"
ADMIN_NAME = "admin"
SERIAL_ANNOTATION = "shoal.io/certificate-serial"

REVOKED_NAMESPACE, REVOKED_NAME = "kube-system", "shoal-revoked-certificates"


class CertificateError(Exception):
    """A certificate or key that cannot be used; the message says which field and why."""


class CsrRefused(CertificateError):
    """A certificate signing request the CA will not sign: malformed, oversized, a bad key."""


class CsrForbidden(CsrRefused):
    """A well-formed CSR asking for what its sender may not have: another node's name, a group."""


@dataclass(frozen=True)
class Identity:
    """Who a client certificate says its holder is: CN and the O entries."""

    name: str
    groups: tuple[str, ...] = ()
    serial: int = 0


@dataclass(frozen=True)
class CertificateAuthority:
    """The cluster root CA: its certificate and private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    # Set by load_or_create_ca: where it lives (None for one made in memory).
    directory: Path | None = field(default=None, compare=False)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def digest(self) -> str:
        return ca_digest(self.certificate)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key (None when the key stayed with the requester)."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None = None

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        assert self.key is not None
        return key_pem(self.key)

    @property
    def serial(self) -> int:
        return int(self.certificate.serial_number)


# -- time and small helpers ----------------------------------------------------------------


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def serial_hex(serial: int) -> str:
    """How serial numbers are written in the revocation list and annotations."""
    return format(serial, "x")


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def ca_digest(cert: x509.Certificate) -> str:
    """The sha256 of the DER certificate, in hex: what join tokens carry."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def check_lifetime(lifetime: dt.timedelta) -> dt.timedelta:
    if lifetime < MIN_LIFETIME:
        raise ValueError(f"certificate lifetime {lifetime} is too short: the least is {MIN_LIFETIME}")
    return lifetime


def needs_renewal(cert: x509.Certificate, now: dt.datetime | None = None) -> bool:
    """True once less than a third of ``cert``'s lifetime is left (or it has expired)."""
    now = now or utcnow()
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return end - now < (end - start) / 3


def renewal_time(cert: x509.Certificate) -> dt.datetime:
    """When ``needs_renewal`` starts saying yes."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return end - (end - start) / 3


def identity_of(cert: x509.Certificate) -> Identity:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    groups = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Identity(
        name=str(names[0].value) if names else "",
        groups=tuple(str(g.value) for g in groups),
        serial=int(cert.serial_number),
    )


def _subject(common_name: str, organizations: tuple[str, ...] | list[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


# -- files ---------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` so that a reader sees the old bytes or the new ones, never a part; the
    file has ``mode`` from its creation on (a key is never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a crash
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_pair(directory: Path, stem: str, issued: Issued) -> tuple[Path, Path]:
    """``stem.crt`` and ``stem.key`` (0600) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    write_atomic(key_path, issued.key_pem, 0o600)
    write_atomic(cert_path, issued.certificate_pem)
    return cert_path, key_path


def load_certificate(data: bytes | str, what: str = "certificate") -> x509.Certificate:
    """A PEM or DER certificate; refuses oversized or malformed input."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_PEM_BYTES:
        raise CertificateError(f"{what}: {len(raw)} bytes is too large (the limit is {MAX_PEM_BYTES})")
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as err:
        raise CertificateError(f"{what}: not a PEM or DER X.509 certificate ({err})") from None


def load_key(data: bytes, what: str = "key") -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise CertificateError(f"{what}: not an unencrypted PEM private key ({err})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{what}: expected an EC private key, found {type(key).__name__}")
    return key


def load_pair(cert_path: Path, key_path: Path) -> Issued:
    cert = load_certificate(cert_path.read_bytes(), str(cert_path))
    key = load_key(key_path.read_bytes(), str(key_path))
    if cert.public_key() != key.public_key():
        raise CertificateError(f"{key_path} is not the key of {cert_path}")
    return Issued(cert, key)


# -- the CA --------------------------------------------------------------------------------


def create_ca(common_name: str = "shoal-root-ca", now: dt.datetime | None = None) -> CertificateAuthority:
    now = now or utcnow()
    key = new_key()
    name = _subject(common_name, ["shoal"])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def load_or_create_ca(pki_dir: Path) -> CertificateAuthority:
    """The CA in ``pki_dir`` (``ca.crt``, ``ca.key``), made there the first time. Refuses to
    replace half of one: a new CA would orphan every certificate the old one signed."""
    cert_path, key_path = pki_dir / "ca.crt", pki_dir / "ca.key"
    if cert_path.exists() and key_path.exists():
        pair = load_pair(cert_path, key_path)
        if pair.key is None:  # pragma: no cover - load_pair always loads the key
            raise CertificateError(f"{key_path}: no key")
        if pair.certificate.not_valid_after_utc <= utcnow():
            raise CertificateError(
                f"{cert_path}: the cluster CA expired on {pair.certificate.not_valid_after_utc}"
            )
        return CertificateAuthority(pair.certificate, pair.key, pki_dir)
    if cert_path.exists() or key_path.exists():
        present, missing = (cert_path, key_path) if cert_path.exists() else (key_path, cert_path)
        raise CertificateError(
            f"{present} exists but {missing} does not: refusing to make a new cluster CA, which "
            "would orphan every certificate the old one signed; restore the missing file"
        )
    pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = create_ca()
    write_atomic(key_path, key_pem(ca.key), 0o600)
    write_atomic(cert_path, ca.certificate_pem)
    return CertificateAuthority(ca.certificate, ca.key, pki_dir)


def _leaf(
    ca: CertificateAuthority,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    lifetime: dt.timedelta,
    usage: list[x509.ObjectIdentifier],
    now: dt.datetime | None,
) -> x509.CertificateBuilder:
    now = now or utcnow()
    check_lifetime(lifetime)
    start = now - min(CLOCK_SKEW, lifetime / 10)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(min(now + lifetime, ca.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )


def issue_server_certificate(
    ca: CertificateAuthority,
    hosts: list[str] | tuple[str, ...],
    lifetime: dt.timedelta = DEFAULT_LIFETIME,
    *,
    common_name: str = "shoal-apiserver",
    now: dt.datetime | None = None,
) -> Issued:
    """A serving certificate for ``hosts`` (IP addresses or DNS names) and localhost/127.0.0.1.
    Wildcard listen addresses (0.0.0.0, ::) are no name and are left out."""
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in [*hosts, "localhost", "127.0.0.1"]:
        host = host.strip().strip("[]")
        if not host or host in seen or host in ("0.0.0.0", "::"):
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = new_key()
    cert = (
        _leaf(ca, _subject(common_name), key.public_key(), lifetime, [ExtendedKeyUsageOID.SERVER_AUTH], now)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue_client_certificate(
    ca: CertificateAuthority,
    common_name: str,
    organizations: list[str] | tuple[str, ...] = (),
    lifetime: dt.timedelta = DEFAULT_LIFETIME,
    *,
    now: dt.datetime | None = None,
) -> Issued:
    """A client certificate (key made here) for user ``common_name`` in groups ``organizations``."""
    if not common_name:
        raise CertificateError("common name: a client certificate needs one (the user's name)")
    key = new_key()
    cert = _leaf(
        ca,
        _subject(common_name, list(organizations)),
        key.public_key(),
        lifetime,
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        now,
    ).sign(ca.key, hashes.SHA256())
    return Issued(cert, key)


def ensure_admin_certificate(
    ca: CertificateAuthority, pki_dir: Path, now: dt.datetime | None = None
) -> Issued:
    """``pki_dir/admin.crt|key`` (CN=admin, O=system:masters): kept while this CA signed it and
    it is not due for renewal, issued again otherwise."""
    cert_path, key_path = pki_dir / "admin.crt", pki_dir / "admin.key"
    with contextlib.suppress(OSError, CertificateError, InvalidSignature, ValueError, TypeError):
        current = load_pair(cert_path, key_path)
        current.certificate.verify_directly_issued_by(ca.certificate)
        if not needs_renewal(current.certificate, now):
            return current
    issued = issue_client_certificate(ca, ADMIN_NAME, [MASTERS_GROUP], ADMIN_LIFETIME, now=now)
    write_pair(pki_dir, "admin", issued)
    return issued


# -- certificate signing requests ----------------------------------------------------------


def make_csr(
    key: ec.EllipticCurvePrivateKey, node_name: str, organizations: tuple[str, ...] = (NODES_GROUP,)
) -> bytes:
    """A node's CSR (what the joining side sends), in PEM."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_subject(node_name, list(organizations)))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _check_public_key(key: object) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise CsrRefused(
                f"CSR public key: EC curve {key.curve.name} is not accepted; use P-256 (secp256r1)"
            )
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CsrRefused(f"CSR public key: RSA {key.key_size} bits is too weak; at least 2048 are needed")
        return key
    raise CsrRefused(f"CSR public key: {type(key).__name__} is not accepted; use ECDSA P-256 or RSA >= 2048")


def load_csr(csr_pem: bytes | str) -> x509.CertificateSigningRequest:
    raw = csr_pem.encode() if isinstance(csr_pem, str) else bytes(csr_pem)
    if len(raw) > MAX_PEM_BYTES:
        raise CsrRefused(f"CSR: {len(raw)} bytes is too large (the limit is {MAX_PEM_BYTES})")
    try:
        csr = x509.load_pem_x509_csr(raw)
    except ValueError as err:
        raise CsrRefused(f"CSR: not a PEM certificate signing request ({err})") from None
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError, x509.UnsupportedGeneralNameType) as err:  # pragma: no cover
        raise CsrRefused(f"CSR signature: cannot be checked ({err})") from None
    if not valid:
        raise CsrRefused("CSR signature: invalid (the request was not signed by the key it carries)")
    return csr


def sign_node_csr(
    ca: CertificateAuthority,
    csr_pem: bytes | str,
    node_name: str,
    lifetime: dt.timedelta = DEFAULT_LIFETIME,
    *,
    now: dt.datetime | None = None,
) -> Issued:
    """The node certificate for ``node_name`` from its CSR: CN = node name, O = shoal:nodes.

    Refused (CsrRefused): malformed or oversized PEM, a bad signature, a subject naming another
    node or any group but shoal:nodes (system:masters above all), a key other than ECDSA P-256
    or RSA of at least 2048 bits."""
    csr = load_csr(csr_pem)
    public_key = _check_public_key(csr.public_key())
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise CsrForbidden(f"CSR subject CN: exactly one is needed (the node's name), found {len(names)}")
    asked = str(names[0].value)
    if asked != node_name:
        raise CsrForbidden(
            f"CSR subject CN: {asked!r} is not this node's name {node_name!r}; a node asks only for its own"
        )
    groups = [str(o.value) for o in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    others = [g for g in groups if g != NODES_GROUP]
    if others:
        raise CsrForbidden(
            f"CSR subject O: {', '.join(repr(g) for g in others)} refused; a node certificate is "
            f"only in group {NODES_GROUP!r}"
        )
    # Also the serving certificate of the node's agent endpoint: the manager connects to its
    # address and checks this name (SNI), which the CA signs only for the node itself.
    cert = (
        _leaf(
            ca,
            _subject(node_name, [NODES_GROUP]),
            public_key,
            lifetime,
            [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
            now,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(node_name)]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert)


# -- verification --------------------------------------------------------------------------


def verify_client_certificate(
    ca: CertificateAuthority | x509.Certificate,
    cert_data: bytes | str | x509.Certificate,
    now: dt.datetime | None = None,
    revoked: set[int] | frozenset[int] = frozenset(),
) -> Identity:
    """The identity a client certificate carries, once it is shown to be this CA's, within its
    validity window, unrevoked and made for client authentication."""
    ca_cert = ca.certificate if isinstance(ca, CertificateAuthority) else ca
    cert = cert_data if isinstance(cert_data, x509.Certificate) else load_certificate(cert_data)
    now = now or utcnow()
    subject = cert.subject.rfc4514_string()
    if cert.issuer == cert.subject:
        raise CertificateError(
            f"certificate {subject!r} is self-signed: it was not issued by this cluster's CA"
        )
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateError(
            f"certificate {subject!r} issuer: it was not issued by this cluster's CA "
            f"(issuer {cert.issuer.rfc4514_string()!r})"
        ) from None
    if now < cert.not_valid_before_utc:
        raise CertificateError(
            f"certificate {subject!r} is not yet valid: notBefore is {cert.not_valid_before_utc.isoformat()}"
        )
    if now >= cert.not_valid_after_utc:
        raise CertificateError(
            f"certificate {subject!r} expired: notAfter was {cert.not_valid_after_utc.isoformat()}"
        )
    if int(cert.serial_number) in revoked:
        raise CertificateError(
            f"certificate {subject!r} (serial {serial_hex(cert.serial_number)}) was revoked"
        )
    with contextlib.suppress(x509.ExtensionNotFound):
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
            raise CertificateError(
                f"certificate {subject!r} extended key usage: not made for client authentication"
            )
    identity = identity_of(cert)
    if not identity.name:
        raise CertificateError(f"certificate {subject!r} subject CN: empty, so it names no user")
    return identity


# -- revocation ----------------------------------------------------------------------------
#
# A ConfigMap, not a Secret: serial numbers are no secret (every TLS handshake shows them), what
# matters is who may write the list, which RBAC decides for both kinds alike. A ConfigMap stays
# readable as plain text (`kubectl get cm -n kube-system shoal-revoked-certificates -o yaml`),
# is not encrypted at rest for nothing, and lets the TLS layer watch it without secret rights.
# One key per serial (hex), so revoking is a merge patch that adds a key: two revocations at
# once never overwrite each other.


def _revocation_list(entries: dict[str, str]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": REVOKED_NAME,
            "namespace": REVOKED_NAMESPACE,
            "labels": {"shoal.io/component": "pki"},
        },
        "data": entries,
    }


async def revoke(client: Client, serial: int, reason: str = "") -> None:
    """Add ``serial`` to the revocation list; the TLS layer refuses it from then on."""
    assert CONFIG_MAP is not None
    entry = {serial_hex(serial): f"revoked {utcnow().strftime('%Y-%m-%dT%H:%M:%SZ')} {reason}".strip()}
    for _attempt in range(5):
        try:
            await client.patch(CONFIG_MAP, REVOKED_NAME, {"data": entry}, REVOKED_NAMESPACE)
            return
        except NotFound:
            with contextlib.suppress(AlreadyExists):
                await client.create(CONFIG_MAP, _revocation_list(entry))
                return
        except Conflict:
            continue
    raise Conflict("the revocation list changed while revoking; try again")


async def revoked_serials(client: Client) -> frozenset[int]:
    """Every revoked serial number."""
    assert CONFIG_MAP is not None
    try:
        configmap = await client.get(CONFIG_MAP, REVOKED_NAME, REVOKED_NAMESPACE)
    except NotFound:
        return frozenset()
    return serials_of(configmap)


def serials_of(revocation_list: Object) -> frozenset[int]:
    """The serial numbers the revocation ConfigMap holds (one hex key each)."""
    out = set()
    for key in revocation_list.get("data") or {}:
        with contextlib.suppress(ValueError):
            out.add(int(key, 16))
    return frozenset(out)


async def is_revoked(client: Client, serial: int) -> bool:
    return serial in await revoked_serials(client)


# -- a manager's files ---------------------------------------------------------------------


def san_hosts(cert: x509.Certificate) -> set[str]:
    """The DNS names and IP addresses a certificate's SubjectAlternativeName lists."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in names.get_values_for_type(x509.DNSName)} | {
        str(a) for a in names.get_values_for_type(x509.IPAddress)
    }


def ensure_server_certificate(
    ca: CertificateAuthority,
    pki_dir: Path,
    hosts: list[str] | tuple[str, ...],
    now: dt.datetime | None = None,
) -> Issued:
    """``pki_dir/server.crt|key`` for ``hosts``: kept while this CA signed it, it names every
    host and it is not due for renewal; issued again otherwise."""
    cert_path, key_path = pki_dir / "server.crt", pki_dir / "server.key"
    wanted = {h.strip("[]") for h in hosts if h and h.strip("[]") not in ("0.0.0.0", "::")}
    with contextlib.suppress(OSError, CertificateError, InvalidSignature, ValueError, TypeError):
        current = load_pair(cert_path, key_path)
        current.certificate.verify_directly_issued_by(ca.certificate)
        if wanted <= san_hosts(current.certificate) and not needs_renewal(current.certificate, now):
            return current
    issued = issue_server_certificate(ca, list(hosts), now=now)
    write_pair(pki_dir, "server", issued)
    return issued


def ensure_manager_pki(pki_dir: Path, hosts: list[str] | tuple[str, ...]) -> CertificateAuthority:
    """What a manager needs at start: the CA (made the first time), its serving certificate
    for ``hosts`` and the admin client certificate (``admin.crt|key``) beside them."""
    ca = load_or_create_ca(pki_dir)
    ensure_server_certificate(ca, pki_dir, hosts)
    ensure_admin_certificate(ca, pki_dir)
    return ca
