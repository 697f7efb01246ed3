"""The join exchange: a machine with a join token gets a node certificate.

The joining side (``join_cluster``) first asks ``POST /shoal/v1/join`` for the CA certificate
(a CARequest: the CA is public) and checks that its sha256 is the digest in its token: a manager
that does not hash to it is not the cluster the token belongs to, and the join stops there,
before the secret is shown (Swarm's order). It then makes its key locally (it never leaves the
machine) and sends a JoinRequest with the token's secret and a CSR (CN = node name, O =
shoal:nodes); the answer's CA and certificate are checked again before anything is kept.

The manager side (``answer``) checks the secret in constant time against each role's current
token (a wrong one is a 401 that says so), signs the CSR (``pki.sign_node_csr``: another node's
name, another group, a weak key or a malformed request are refused) and records the
certificate's serial, so that ``shoal node rm`` can revoke it. Refusals are logged.

The API server finds its CA through ``serve_joins(resources, authority)``, which its runner calls
when it starts; a server started without one (tests serving bare ``Resources``) answers 503.
Until the API is HTTPS, the secret crosses the network in the clear; with TLS, the second
request goes over a connection pinned to the CA checked in the first.

Renewal (``NodeCredentials.renewal_request``/``accept_renewal`` on the node, ``answer_renewal``
on the manager) needs the node authenticated by its current certificate: the TLS step gives it
an endpoint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import ssl
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shoal.api import Object
from shoal.api.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceUnavailable,
    invalid,
    required,
)
from shoal.api.kinds import CONFIG_MAP, NODE
from shoal.api.validation import dns1123_subdomain
from shoal.client._interface import Client
from shoal.security import bundle, pki
from shoal.security import tokens as join_tokens
from shoal.security.tls import client_context_from_pem

log = logging.getLogger(__name__)

API_VERSION = "shoal.io/v1"
NODE_CERTS_NAMESPACE, NODE_CERTS_NAME = "kube-system", "shoal-node-certificates"
PKI_DIR = "pki"  # under an agent's state dir: ca.crt, node.crt, node.key


@dataclass(frozen=True)
class Authority:
    """What a manager signs node certificates with."""

    ca: pki.CertificateAuthority
    node_lifetime: dt.timedelta = pki.DEFAULT_LIFETIME
    data_dir: Path | None = None  # where the CA key and keyring are, for joining managers
    store_url: str = ""  # the store the manager serves ("": sqlite in data_dir)


_AUTHORITIES: weakref.WeakKeyDictionary[Any, Authority] = weakref.WeakKeyDictionary()


def manager_authority(
    data_dir: Path, hosts: list[str] | tuple[str, ...], node_lifetime: dt.timedelta = pki.DEFAULT_LIFETIME
) -> Authority:
    """A manager's PKI in ``data_dir/pki``, made the first time (``pki.ensure_manager_pki``: the
    CA, the serving certificate for ``hosts``, the admin client certificate)."""
    pki.check_lifetime(node_lifetime)
    return Authority(pki.ensure_manager_pki(data_dir / "pki", hosts), node_lifetime, data_dir)


async def serve_joins(resources: Any, authority: Authority) -> None:
    """Let the API server over ``resources`` answer joins with ``authority``, and make the join
    tokens (or give them the CA's digest). Secrets may be unreadable yet (an autolocked
    keyring after a restart): the tokens are then ensured at the first join instead."""
    from shoal.client.local import LocalClient

    _AUTHORITIES[resources] = authority
    try:
        await join_tokens.ensure(LocalClient(resources), authority.ca.digest)
    except ApiError as err:
        log.warning("join tokens not checked at start (%s); the first join does it", err)


def authority_for(resources: Any) -> Authority | None:
    return _AUTHORITIES.get(resources)


_AGENT_CONTEXTS: weakref.WeakKeyDictionary[Any, ssl.SSLContext] = weakref.WeakKeyDictionary()
MANAGER_CLIENT_NAME = "shoal-manager"


def agent_client_context(resources: Any) -> ssl.SSLContext | None:
    """How this manager connects to agents' endpoints (logs, exec, stats): trusting only the
    cluster CA, with a client certificate in ``system:masters`` made for this process (it never
    touches the disk). None without a CA (then agents serve plain HTTP)."""
    context = _AGENT_CONTEXTS.get(resources)
    if context is None:
        authority = authority_for(resources)
        if authority is None:
            return None
        issued = pki.issue_client_certificate(authority.ca, MANAGER_CLIENT_NAME, [pki.MASTERS_GROUP])
        context = client_context_from_pem(
            authority.ca.certificate_pem, issued.certificate_pem, issued.key_pem
        )
        _AGENT_CONTEXTS[resources] = context
    return context


# -- the manager's side --------------------------------------------------------------------


def _request_fields(body: Any) -> tuple[str, str, str]:
    if not isinstance(body, dict):
        raise BadRequest("a join request is a JSON object with secret, nodeName and csr")
    problems = [
        required(f) for f in ("secret", "nodeName", "csr") if not isinstance(body.get(f), str) or not body[f]
    ]
    if problems:
        raise Invalid.for_object("JoinRequest", "shoal.io", str(body.get("nodeName") or ""), problems)
    node = str(body["nodeName"])
    bad = dns1123_subdomain(node)
    if bad:
        raise Invalid.for_object("JoinRequest", "shoal.io", node, [invalid("nodeName", node, p) for p in bad])
    return str(body["secret"]), node, str(body["csr"])


async def answer(resources: Any, body: Any) -> Object:
    """The answer to a CARequest (the CA certificate, which is public: a joining node checks it
    against its token before it shows its secret) or to a JoinRequest (a JoinResponse), or the
    ApiError that refuses it; refusals are logged."""
    from shoal.client.local import LocalClient  # the server's in-process client

    authority = authority_for(resources)
    if isinstance(body, dict) and body.get("kind") == "CARequest":
        if authority is None:
            raise ServiceUnavailable("this API server has no cluster CA")
        return {
            "apiVersion": API_VERSION,
            "kind": "CAResponse",
            "caCertificate": authority.ca.certificate_pem.decode(),
        }
    try:
        secret, node, csr = _request_fields(body)
        client = LocalClient(resources)
        if authority is None:
            raise ServiceUnavailable("this API server has no cluster CA, so it cannot sign node certificates")
        await join_tokens.ensure(client, authority.ca.digest)  # one read when they are in order
        role = await join_tokens.role_of(client, secret)  # 401 for a wrong secret
        manager = _manager_bundle(authority, role, node, body.get("asManager") is True)
        try:
            issued = pki.sign_node_csr(authority.ca, csr, node, authority.node_lifetime)
        except pki.CsrForbidden as err:
            raise Forbidden(str(err), name=node, kind="JoinRequest", group="shoal.io") from None
        except pki.CsrRefused as err:
            raise BadRequest(str(err), name=node, kind="JoinRequest", group="shoal.io") from None
    except ApiError as err:
        name = body.get("nodeName") if isinstance(body, dict) else None
        log.warning("join refused (node %r): %s", name if isinstance(name, str) else None, err.message)
        raise
    await record_serial(client, node, issued.serial)
    log.info("node %s joined as a %s (certificate %s)", node, role, pki.serial_hex(issued.serial))
    response: Object = {
        "apiVersion": API_VERSION,
        "kind": "JoinResponse",
        "nodeName": node,
        "role": role,
        "caCertificate": authority.ca.certificate_pem.decode(),
        "certificate": issued.certificate_pem.decode(),
    }
    if manager is not None:
        response["manager"] = manager
    return response


def _manager_bundle(authority: Authority, role: str, node: str, as_manager: bool) -> Object | None:
    """What a machine joining as a manager gets (``security.bundle``); None for a worker."""
    if not as_manager:
        return None
    if role != "manager":
        raise Forbidden(
            f"a manager joins with the manager token (`shoal token show manager`); this is the {role} token",
            name=node,
            kind="JoinRequest",
            group="shoal.io",
        )
    if authority.data_dir is None:
        raise ServiceUnavailable("this API server keeps no cluster files, so it cannot add managers")
    return bundle.make(authority.data_dir, authority.store_url)


KEPT_SERIALS = 4  # a node's certificates that may still be valid: the current one, renewed ones


async def record_serial(client: Client, node: str, serial: int) -> None:
    """Remember ``serial`` as ``node``'s current certificate: first in its entry of the
    ConfigMap kube-system/shoal-node-certificates (space-separated, newest first: a renewed or
    rejoined node's previous certificates stay valid until they expire, and ``node rm`` revokes
    them all), and on the Node's ``shoal.io/certificate-serial`` annotation when the Node exists
    (a joining node's agent registers it only afterwards)."""
    assert CONFIG_MAP is not None and NODE is not None
    for _attempt in range(5):
        try:
            record = await client.get(CONFIG_MAP, NODE_CERTS_NAME, NODE_CERTS_NAMESPACE)
        except NotFound:
            body: Object = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": NODE_CERTS_NAME,
                    "namespace": NODE_CERTS_NAMESPACE,
                    "labels": {"shoal.io/component": "pki"},
                },
                "data": {node: pki.serial_hex(serial)},
            }
            try:
                await client.create(CONFIG_MAP, body)
                break
            except AlreadyExists:
                continue
        data = dict(record.get("data") or {})
        older = [s for s in str(data.get(node, "")).split() if s != pki.serial_hex(serial)]
        data[node] = " ".join([pki.serial_hex(serial), *older][:KEPT_SERIALS])
        record["data"] = data
        try:
            await client.update(CONFIG_MAP, record)
            break
        except Conflict:
            continue
    with contextlib.suppress(NotFound):
        annotations = {pki.SERIAL_ANNOTATION: pki.serial_hex(serial)}
        await client.patch(NODE, node, {"metadata": {"annotations": annotations}})


async def node_serials(client: Client, node: str) -> list[int]:
    """The serials of ``node``'s certificates that may still be valid, newest first."""
    assert CONFIG_MAP is not None and NODE is not None
    found: list[str] = []
    with contextlib.suppress(NotFound):
        record = await client.get(CONFIG_MAP, NODE_CERTS_NAME, NODE_CERTS_NAMESPACE)
        found.extend(str((record.get("data") or {}).get(node, "")).split())
    with contextlib.suppress(NotFound):
        current = await client.get(NODE, node)
        annotation = ((current.get("metadata") or {}).get("annotations") or {}).get(pki.SERIAL_ANNOTATION)
        if annotation and annotation not in found:
            found.append(str(annotation))
    out: list[int] = []
    for text in found:
        with contextlib.suppress(ValueError):
            out.append(int(text, 16))
    return out


async def node_serial(client: Client, node: str) -> int | None:
    """The serial of ``node``'s current certificate, if one was recorded."""
    serials = await node_serials(client, node)
    return serials[0] if serials else None


async def revoke_node(client: Client, node: str) -> list[int]:
    """Revoke ``node``'s certificates (``shoal node rm``): its current one and those it had
    before that may still be valid. Their serials; none when nothing was recorded."""
    serials = await node_serials(client, node)
    for serial in serials:
        await pki.revoke(client, serial, f"node {node} removed")
    return serials


# -- the joining side ----------------------------------------------------------------------


@dataclass(frozen=True)
class NodeCredentials:
    """Where a node keeps its certificate, key and the cluster CA (``<state dir>/pki``)."""

    directory: Path

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def cert_path(self) -> Path:
        return self.directory / "node.crt"

    @property
    def key_path(self) -> Path:
        return self.directory / "node.key"

    @classmethod
    def under(cls, state_dir: Path) -> NodeCredentials:
        return cls(state_dir / PKI_DIR)

    def exists(self) -> bool:
        return self.ca_path.exists() and self.cert_path.exists() and self.key_path.exists()

    def certificate(self) -> pki.Issued:
        return pki.load_pair(self.cert_path, self.key_path)

    def needs_renewal(self, now: dt.datetime | None = None) -> bool:
        return pki.needs_renewal(self.certificate().certificate, now)

    def save(self, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> None:
        """Keep a new certificate and key (each file replaced atomically, the key first)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        pki.write_atomic(self.ca_path, ca_pem)
        pki.write_atomic(self.key_path, key_pem, 0o600)
        pki.write_atomic(self.cert_path, cert_pem)

    # Renewal: the agent calls these when ``needs_renewal()`` says so; the request goes over the
    # connection its current certificate authenticates (the TLS step wires the endpoint, which
    # answers with ``answer_renewal``).

    def renewal_request(self, node: str) -> tuple[bytes, Object]:
        """A fresh key (kept by the caller until the answer comes) and the RenewalRequest body."""
        key = pki.new_key()
        body = {"apiVersion": API_VERSION, "kind": "RenewalRequest", "csr": pki.make_csr(key, node).decode()}
        return pki.key_pem(key), body

    def accept_renewal(self, node: str, key_pem: bytes, answer: Any) -> pki.Issued:
        """Check a RenewalResponse against the CA this node already trusts, then keep it."""
        ca = pki.load_certificate(self.ca_path.read_bytes(), str(self.ca_path))
        if not isinstance(answer, dict) or answer.get("kind") != "RenewalResponse":
            raise BadRequest("the manager answered no RenewalResponse")
        try:
            cert = pki.load_certificate(str(answer.get("certificate") or ""), "the renewed certificate")
            identity = pki.verify_client_certificate(ca, cert)
        except pki.CertificateError as err:
            raise Forbidden(f"the renewed certificate is unusable: {err}") from None
        key = pki.load_key(key_pem)
        if cert.public_key() != key.public_key() or identity.name != node:
            raise Forbidden("the renewed certificate is not for this node's new key and name")
        self.save(pki.pem(ca), pki.pem(cert), key_pem)
        return pki.Issued(cert, key)


@dataclass(frozen=True)
class Joined:
    role: str
    credentials: NodeCredentials
    certificate: pki.Issued
    manager: Object | None = None  # the manager bundle, when joining as a manager


def check_ca(server: str, token: join_tokens.JoinToken, answer: Any) -> x509.Certificate:
    """The CA certificate in ``answer``, once its sha256 is the token's digest."""
    text = answer.get("caCertificate") if isinstance(answer, dict) else None
    try:
        ca = pki.load_certificate(str(text or ""), "the manager's CA certificate")
    except pki.CertificateError as err:
        raise Forbidden(f"the manager at {server} sent no usable CA certificate: {err}") from None
    actual = pki.ca_digest(ca)
    if actual != token.digest:
        raise Forbidden(
            f"the manager at {server} is not the cluster this token belongs to: CA digest mismatch "
            f"(the token expects {token.digest[:16]}..., the manager's CA is {actual[:16]}...)"
        )
    return ca


def check_answer(server: str, token: join_tokens.JoinToken, node: str, key_pem: bytes, answer: Any) -> Joined:
    """Check a JoinResponse before trusting it: the CA must hash to the token's digest, the
    certificate must be that CA's, for this node and this key. Returns it (not yet saved)."""
    if not isinstance(answer, dict) or answer.get("kind") != "JoinResponse":
        raise BadRequest(f"the manager at {server} answered no JoinResponse")
    ca = check_ca(server, token, answer)
    key = pki.load_key(key_pem)
    try:
        cert = pki.load_certificate(str(answer.get("certificate") or ""), "the node certificate")
        identity = pki.verify_client_certificate(ca, cert)
    except pki.CertificateError as err:
        raise Forbidden(f"the manager at {server} sent an unusable node certificate: {err}") from None
    if cert.public_key() != key.public_key() or identity.name != node:
        raise Forbidden(
            f"the manager at {server} sent a certificate that is not for this node's key and name"
        )
    return Joined(str(answer.get("role") or "worker"), NodeCredentials(Path()), pki.Issued(cert, key))


async def _post(server: str, request: Object, verify: ssl.SSLContext | bool) -> Any:
    """POST ``request`` to the manager's join endpoint: its JSON answer, or its refusal raised."""
    try:
        async with httpx.AsyncClient(timeout=10, verify=verify) as http:
            response = await http.post(f"{server.rstrip('/')}/shoal/v1/join", json=request)
    except httpx.HTTPError as err:
        raise ServiceUnavailable(f"cannot reach the manager at {server}: {err}") from None
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text[:200]}
    if response.status_code >= 400:
        raise ApiError.from_status(body if isinstance(body, dict) else {}, response.status_code)
    return body


async def join_cluster(
    server: str, token_text: str, node: str, state_dir: Path, *, as_manager: bool = False
) -> Joined:
    """Join the cluster at ``server`` with ``token_text`` as ``node``; the key, certificate and
    CA are saved under ``state_dir/pki``. ``as_manager`` asks for the manager bundle too
    (``security.bundle``; the manager token is needed). Raises the manager's refusal, or
    Forbidden when the manager is not the token's cluster."""
    try:
        token = join_tokens.parse(token_text)
    except ValueError as err:
        raise BadRequest(str(err)) from None
    # First the CA, checked against the token before the secret is shown (Swarm's order).
    # The manager's certificate cannot be checked yet: nothing is trusted before the CA, and the
    # CA is trusted once its digest is the token's. Only the CA request goes out unverified.
    answer = await _post(server, {"apiVersion": API_VERSION, "kind": "CARequest"}, False)
    ca = check_ca(server, token, answer)
    pinned = client_context_from_pem(ca.public_bytes(serialization.Encoding.PEM))
    key = pki.new_key()
    key_pem = pki.key_pem(key)
    request: Object = {
        "apiVersion": API_VERSION,
        "kind": "JoinRequest",
        "nodeName": node,
        "secret": token.secret,
        "csr": pki.make_csr(key, node).decode(),
    }
    if as_manager:
        request["asManager"] = True
    body = await _post(server, request, pinned)
    joined = check_answer(server, token, node, key_pem, body)
    credentials = NodeCredentials.under(state_dir)
    ca_pem = str(body["caCertificate"]).encode()
    credentials.save(ca_pem, joined.certificate.certificate_pem, key_pem)
    manager = body.get("manager") if as_manager else None
    return Joined(
        joined.role, credentials, joined.certificate, manager if isinstance(manager, dict) else None
    )


async def issue_local_node_credentials(resources: Any, node: str, state_dir: Path) -> NodeCredentials | None:
    """A manager's own agent gets its node certificate straight from the CA (no token: it is
    the manager's), kept in ``state_dir/pki`` like a joined node's. None without a CA."""
    from shoal.client.local import LocalClient

    authority = authority_for(resources)
    if authority is None:
        return None
    credentials = NodeCredentials.under(state_dir)
    with contextlib.suppress(OSError, pki.CertificateError):
        current = credentials.certificate()
        identity = pki.verify_client_certificate(authority.ca, current.certificate)
        if identity.name == node and not pki.needs_renewal(current.certificate):
            return credentials
    key = pki.new_key()
    issued = pki.sign_node_csr(authority.ca, pki.make_csr(key, node), node, authority.node_lifetime)
    await record_serial(LocalClient(resources), node, issued.serial)
    credentials.save(authority.ca.certificate_pem, issued.certificate_pem, pki.key_pem(key))
    return credentials


async def answer_renewal(resources: Any, identity: pki.Identity, body: Any) -> Object:
    """The RenewalResponse for a node authenticated as ``identity`` (its current, verified and
    unrevoked certificate): a certificate for a new key, for the same node only."""
    from shoal.client.local import LocalClient

    authority = authority_for(resources)
    if authority is None:
        raise ServiceUnavailable("this API server has no cluster CA, so it cannot sign node certificates")
    if pki.NODES_GROUP not in identity.groups:
        raise Forbidden(f'user "{identity.name}" is not a node (group {pki.NODES_GROUP}): no renewal')
    if not isinstance(body, dict) or not isinstance(body.get("csr"), str):
        raise Invalid.for_object("RenewalRequest", "shoal.io", identity.name, [required("csr")])
    try:
        issued = pki.sign_node_csr(authority.ca, body["csr"], identity.name, authority.node_lifetime)
    except pki.CsrForbidden as err:
        raise Forbidden(str(err), name=identity.name, kind="RenewalRequest", group="shoal.io") from None
    except pki.CsrRefused as err:
        raise BadRequest(str(err), name=identity.name, kind="RenewalRequest", group="shoal.io") from None
    await record_serial(LocalClient(resources), identity.name, issued.serial)
    return {
        "apiVersion": API_VERSION,
        "kind": "RenewalResponse",
        "nodeName": identity.name,
        "certificate": issued.certificate_pem.decode(),
    }
