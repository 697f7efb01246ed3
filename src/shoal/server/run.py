"""Running the API server: open the store, seed it, write the kubeconfig, serve HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import signal
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import uvicorn

from shoal.client import kubeconfig, manifests
from shoal.client.local import LocalClient
from shoal.security import join as node_join
from shoal.security import keys, pki
from shoal.security import tls as tls_module
from shoal.security.audit import FILE_NAME as AUDIT_FILE
from shoal.security.audit import AuditLog, AuditMiddleware
from shoal.security.authn import Authenticator
from shoal.security.authz import Authorizer, SecurityCache
from shoal.security.default_roles import bootstrap_roles
from shoal.security.tls import TLSHttpProtocol, TLSWebSocketProtocol
from shoal.server import backup as server_backup
from shoal.server.app import create_app
from shoal.server.guard import Guard
from shoal.server.resources import Resources
from shoal.store import open_store
from shoal.store.encryption import EncryptingStore

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A server setting that cannot work; the message says which and why."""


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"--listen {listen!r}: expected HOST:PORT, as in 127.0.0.1:6443")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


@contextlib.asynccontextmanager
async def api_server(
    data_dir: Path,
    listen: str,
    store_url: str = "",
    *,
    autolock: bool = False,
    node_cert_lifetime: dt.timedelta = pki.DEFAULT_LIFETIME,
) -> AsyncIterator[tuple[Resources, Listening]]:
    """The API on ``listen`` over the store in ``data_dir`` (or ``store_url``), seeded, with
    the kubeconfig written and SIGINT/SIGTERM stopping it; what ``shoal server`` and the
    manager share. Secrets are encrypted at rest under the keyring of ``data_dir/keys``
    (sealed with ``autolock``), mutating requests audited in ``data_dir/audit.log``. The
    store is closed on the way out."""
    host, port = parse_listen(listen)
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before serving)
    store_url = remembered_store(data_dir, store_url)
    try:  # the cluster CA (made the first time), serving and admin certificates in data_dir/pki
        authority = node_join.manager_authority(data_dir, [host, socket.gethostname()], node_cert_lifetime)
        authority = dataclasses.replace(authority, store_url=store_url)
    except (pki.CertificateError, ValueError) as err:
        raise ConfigError(str(err)) from None
    keyring, unlock_key = keys.load_or_create(data_dir, autolock=autolock)
    if unlock_key is not None:
        keys.announce_unlock_key(unlock_key)
    elif keyring.locked:
        log.warning("%s: secrets stay unreadable until then; other objects are served", keys.LOCKED_MESSAGE)
    try:
        store = EncryptingStore(await open_store(store_url or f"sqlite:///{data_dir / 'state.db'}"), keyring)
    except ValueError as err:  # a store URL that names no backend
        raise ConfigError(f"--store: {err}") from None
    audit_log = AuditLog(data_dir / AUDIT_FILE)
    try:
        resources = Resources(store)
        await resources.bootstrap()
        await node_join.serve_joins(resources, authority)  # join tokens pin this CA
        server_backup.serve_backups(resources, data_dir, store.inner)  # below encryption
        pki_dir = data_dir / "pki"
        context = tls_module.server_context(
            pki_dir / "server.crt", pki_dir / "server.key", pki_dir / "ca.crt"
        )
        async with (
            _guard(resources, authority.ca) as guard,
            listening(resources, host, port, tls=context, audit=audit_log, guard=guard) as server,
        ):
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, server.stop)
            admin = kubeconfig.Credentials(
                ca_pem=(pki_dir / "ca.crt").read_bytes(),
                cert_pem=(pki_dir / "admin.crt").read_bytes(),
                key_pem=(pki_dir / "admin.key").read_bytes(),
            )
            kubeconfig.write(data_dir / "kubeconfig", server.url, admin)
            yield resources, server
    finally:
        await store.close()
        audit_log.close()


STORE_FILE = "store-url"


def remembered_store(data_dir: Path, store_url: str) -> str:
    """The store of the manager in ``data_dir``: ``store_url`` when given (and remembered in
    ``data_dir/store-url``), else the one remembered, else "" (sqlite in the data dir). A
    manager restarted without ``--store`` thus finds its shared store again instead of
    starting an empty cluster beside it."""
    path = data_dir / STORE_FILE
    if store_url:
        if not path.exists() or path.read_text().strip() != store_url:
            path.write_text(store_url + "\n")
        return store_url
    return path.read_text().strip() if path.exists() else ""


@contextlib.asynccontextmanager
async def _guard(
    resources: Resources, ca: pki.CertificateAuthority
) -> AsyncIterator[tuple[Authenticator, Authorizer]]:
    """Who may do what: the default roles in the store, and the caches the checks read, kept
    current while the block runs."""
    local = LocalClient(resources)
    await bootstrap_roles(local)
    cache = SecurityCache(local)
    task = asyncio.create_task(cache.run(), name="security cache")  # owned: cancelled below
    try:
        await cache.synced.wait()
        yield (
            Authenticator(ca, revoked=cache.revoked, token=cache.token, lookup=cache.lookup_token),
            Authorizer.of(cache),
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def serve(
    data_dir: Path,
    listen: str = "127.0.0.1:6443",
    store_url: str = "",
    apply_paths: tuple[str, ...] = (),
    on_ready: Callable[[str], None] | None = None,
    on_applied: Callable[[manifests.Manifest, str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. ``on_ready`` is told the server URL once it listens,
    ``on_applied`` each manifest of ``apply_paths`` and what applying it did."""
    async with api_server(data_dir, listen, store_url) as (resources, server):
        client = LocalClient(resources)
        for path in apply_paths:
            for manifest in manifests.load(path):
                action, _ = await manifests.apply(client, manifest)
                if on_applied is not None:
                    on_applied(manifest, action)
        if on_ready is not None:
            on_ready(server.url)
        await server.stopped()


class Listening:
    """A running HTTP server: its URL, and a way to stop it."""

    def __init__(self, server: uvicorn.Server, url: str, main_loop: asyncio.Task[None]) -> None:
        self._server = server
        self.url = url
        self._main_loop = main_loop

    def stop(self) -> None:
        self._server.should_exit = True

    async def stopped(self) -> None:
        await asyncio.shield(self._main_loop)


@contextlib.asynccontextmanager
async def serving(
    app: Any, listener: socket.socket, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Listening]:
    """Serve the ASGI ``app`` on the bound ``listener`` in this event loop while the block
    runs; on exit, stop accepting, finish open requests briefly, and close. The API server
    and the agent's log endpoint both run this way. With ``tls`` (``security.tls``) it is
    HTTPS, and each request's scope carries the client's certificate."""
    host, port = listener.getsockname()[:2]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="none",
        http=TLSHttpProtocol if tls is not None else "httptools",
        ws=TLSWebSocketProtocol if tls is not None else "auto",
        ssl_context_factory=(lambda _config, _default: tls) if tls is not None else None,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    # uvicorn.Server.serve() would install its own signal handlers; these are its other
    # steps (load the config, create the lifespan, startup, main loop) without them.
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[listener])
    main_loop = asyncio.create_task(server.main_loop())  # owned here: awaited below
    try:
        scheme = "https" if tls is not None else "http"
        yield Listening(server, f"{scheme}://{host}:{port}", main_loop)
    finally:
        server.should_exit = True
        await main_loop
        await server.shutdown()


@contextlib.asynccontextmanager
async def listening(
    resources: Resources,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tls: ssl.SSLContext | None = None,
    audit: AuditLog | None = None,
    guard: tuple[Authenticator, Authorizer] | None = None,
) -> AsyncIterator[Listening]:
    """Serve the API on ``host:port`` (0: any free port) while the block runs; HTTPS with
    ``tls``; every request authenticated and authorized by ``guard``, and the mutating ones
    recorded in ``audit``, when given (the audit log also sees the refusals)."""
    listener = bind(host, port)
    address = f"{host}:{listener.getsockname()[1]}"
    app: Any = create_app(resources, address, guard[1].rbac if guard is not None else None)
    if guard is not None:
        app = Guard(app, *guard)
    if audit is not None:
        app = AuditMiddleware(app, audit)
    async with serving(app, listener, tls=tls) as server:
        yield server


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock
