"""Mutual TLS for the API server and the agents: SSL contexts, and the client certificate handed
to the ASGI app.

uvicorn terminates TLS but keeps the peer's certificate to itself, so shoal gives it two
protocol classes (``http=`` and ``ws=`` in its Config) that put the certificate chain into the
request scope as the ASGI TLS extension says: ``scope["extensions"]["tls"]["client_cert_chain"]``,
a list of PEM strings, empty when the client showed none. Authentication reads it from there
(``client_certificate``).

The TLS layer itself checks a presented certificate against the cluster CA (signature, expiry);
one that fails is refused during the handshake, before any HTTP, which Python's ssl module cannot
defer. A client without a certificate gets through (``CERT_OPTIONAL``): the join exchange and
bearer tokens need that, and authorization refuses it as ``system:anonymous`` otherwise.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

TLS_EXTENSION = "tls"


def server_context(
    cert_file: Path, key_file: Path, ca_file: Path, *, require_client: bool = False
) -> ssl.SSLContext:
    """What the API server and an agent's endpoint serve with: TLS 1.2 or later, its own
    certificate, and client certificates requested (required, for an agent's endpoint) and
    checked against the cluster CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.load_verify_locations(ca_file)
    context.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL
    return context


def client_context(
    ca_file: Path, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """What clients use: the cluster CA as the only trust root, and a client certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None and key_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


def client_context_from_pem(
    ca_pem: bytes | None, cert_pem: bytes | None = None, key_pem: bytes | None = None
) -> ssl.SSLContext:
    """``client_context`` from PEM bytes (a kubeconfig's inline data). Without a CA, the
    system's trust store is used. Python's ssl loads a key pair from files only: it goes
    through a private temporary folder that is gone when this returns."""
    if ca_pem:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem.decode())
    else:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_pem and key_pem:
        with tempfile.TemporaryDirectory(prefix="shoal-tls-") as folder:  # mode 0700
            cert_file, key_file = Path(folder, "tls.crt"), Path(folder, "tls.key")
            cert_file.write_bytes(cert_pem)
            key_file.write_bytes(key_pem)
            context.load_cert_chain(cert_file, key_file)
    return context


def _peer_chain(transport: asyncio.BaseTransport) -> list[str]:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return []
    der = ssl_object.getpeercert(binary_form=True)
    return [ssl.DER_cert_to_PEM_cert(der)] if der else []


def _add_extension(scope: Any, chain: list[str]) -> None:
    extensions = scope.setdefault("extensions", {})
    extensions[TLS_EXTENSION] = {
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
    }


class TLSHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the client certificate in every request's scope."""

    _client_chain: list[str]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._client_chain = _peer_chain(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        _add_extension(self.scope, self._client_chain)


class TLSWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol, with the client certificate in the scope."""

    _client_chain: list[str]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._client_chain = _peer_chain(transport)

    async def run_asgi(self) -> None:
        # The app's task starts here, with the scope the handshake built: complete it first.
        _add_extension(self.scope, self._client_chain)
        await super().run_asgi()


def client_certificate(scope: Any) -> str | None:
    """The PEM certificate the client presented on this connection, if any."""
    chain = ((scope.get("extensions") or {}).get(TLS_EXTENSION) or {}).get("client_cert_chain") or []
    return chain[0] if chain else None
