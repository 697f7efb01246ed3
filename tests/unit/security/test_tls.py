"""The TLS layer with real handshakes on loopback: a client certificate reaches the app through
the ASGI TLS extension, on HTTP and WebSocket; one from another CA is refused at the handshake."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from shoal.api.errors import ServiceUnavailable
from shoal.api.kinds.namespace import NAMESPACE
from shoal.client import kubeconfig
from shoal.client.http import HttpClient
from shoal.client.kubeconfig import Credentials
from shoal.security.tls import client_certificate, client_context, server_context
from shoal.server.resources import Resources
from shoal.server.run import bind, listening, serving
from shoal.store.memory import MemoryStore


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path.with_suffix(".crt"), path.with_suffix(".key")


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("shoal test CA", ca_key, ca=True)
    ca_file, _ = _write(tmp_path / "ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert, server_key_file = _write(
        tmp_path / "server", _certificate("server", server_key, (ca.subject, ca_key), server=True), server_key
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert, client_key_file = _write(
        tmp_path / "client", _certificate("alice", client_key, (ca.subject, ca_key)), client_key
    )
    other_key = ec.generate_private_key(ec.SECP256R1())
    stranger, stranger_key = _write(tmp_path / "stranger", _certificate("mallory", other_key), other_key)
    return {
        "ca": ca_file,
        "server": server_cert,
        "server_key": server_key_file,
        "client": client_cert,
        "client_key": client_key_file,
        "stranger": stranger,
        "stranger_key": stranger_key,
    }


def _subject(scope: object) -> str:
    pem = client_certificate(scope)
    if pem is None:
        return "anonymous"
    cert = x509.load_pem_x509_certificate(pem.encode())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


async def whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(_subject(request.scope))


async def whoami_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(_subject(websocket.scope))
    await websocket.close()


@pytest.fixture
async def url(pki: dict[str, Path]) -> AsyncIterator[str]:
    app = Starlette(routes=[Route("/whoami", whoami), WebSocketRoute("/ws", whoami_ws)])
    tls = server_context(pki["server"], pki["server_key"], pki["ca"])
    async with serving(app, bind("127.0.0.1", 0), tls=tls) as server:
        assert server.url.startswith("https://")
        yield server.url.removeprefix("https://")


async def test_the_client_certificate_reaches_the_app(url: str, pki: dict[str, Path]) -> None:
    with_cert = client_context(pki["ca"], pki["client"], pki["client_key"])
    async with httpx.AsyncClient(verify=with_cert) as http:
        assert (await http.get(f"https://{url}/whoami")).text == "alice"
    async with httpx.AsyncClient(verify=client_context(pki["ca"])) as http:
        assert (await http.get(f"https://{url}/whoami")).text == "anonymous"
    async with websockets.connect(f"wss://{url}/ws", ssl=with_cert) as ws:
        assert await ws.recv() == "alice"


async def test_a_certificate_of_another_ca_is_refused_at_the_handshake(
    url: str, pki: dict[str, Path]
) -> None:
    stranger = client_context(pki["ca"], pki["stranger"], pki["stranger_key"])
    async with httpx.AsyncClient(verify=stranger) as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(f"https://{url}/whoami")
    # and the server is not trusted by a client that does not know the CA
    async with httpx.AsyncClient(verify=ssl.create_default_context()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"https://{url}/whoami")


async def test_the_api_over_tls_with_a_kubeconfig_of_inline_credentials(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    resources = Resources(MemoryStore())
    await resources.bootstrap()
    tls = server_context(pki["server"], pki["server_key"], pki["ca"])
    async with listening(resources, tls=tls) as server:
        credentials = Credentials(
            ca_pem=pki["ca"].read_bytes(),
            cert_pem=pki["client"].read_bytes(),
            key_pem=pki["client_key"].read_bytes(),
        )
        kubeconfig.write(tmp_path / "kubeconfig", server.url, credentials, user="alice")
        connection = kubeconfig.read(tmp_path / "kubeconfig")
        assert connection.credentials == credentials and connection.server.startswith("https://")
        client = HttpClient(connection.server, credentials=connection.credentials)
        try:
            names = {n["metadata"]["name"] for n in (await client.list(NAMESPACE))["items"]}
        finally:
            await client.close()
        assert "kube-system" in names
        # A client that does not trust the cluster CA never gets to send a request.
        stranger = HttpClient(server.url, credentials=Credentials(ca_pem=pki["stranger"].read_bytes()))
        try:
            with pytest.raises(ServiceUnavailable, match="certificate verify failed"):
                await stranger.list(NAMESPACE)
        finally:
            await stranger.close()
