"""What the commands share: the global settings, the connection, and the async runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from shoal.client.kubeconfig import Connection, KubeconfigError, read

if TYPE_CHECKING:
    from shoal.client.http import HttpClient

T = TypeVar("T")


class Interrupted(Exception):
    """The user pressed Ctrl-C while a command ran."""


class Failed(Exception):
    """The command already reported its errors (one line each); it exits with status 1."""


@dataclass
class Settings:
    """The global options: where the API server is, and the default namespace."""

    kubeconfig: Path
    server: str | None = None
    _connection: Connection | None = field(default=None, repr=False)

    def connection(self) -> Connection:
        """The server URL (--server, else the kubeconfig's) and the kubeconfig's namespace."""
        if self._connection is None:
            if self.server:
                # Another address, the same credentials (a kubeconfig written by init or
                # `shoal user create`).
                found = Connection(self.server)
                if self.kubeconfig.is_file():
                    with suppress(KubeconfigError):
                        found = read(self.kubeconfig)
                self._connection = Connection(self.server, found.namespace, found.credentials)
            else:
                self._connection = read(self.kubeconfig)
        return self._connection

    def namespace(self, explicit: str | None) -> str:
        return explicit or self.connection().namespace

    @asynccontextmanager
    async def client(self) -> AsyncIterator[HttpClient]:
        from shoal.client.http import HttpClient

        connection = self.connection()
        client = HttpClient(connection.server, credentials=connection.credentials)
        try:
            yield client
        finally:
            await client.close()


pass_settings = click.make_pass_decorator(Settings)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(body: Coroutine[Any, Any, T]) -> T:
    """Run a command's async body on a fresh event loop (uvloop when installed).

    Ctrl-C cancels the body (its ``finally`` blocks run, clients close) and raises
    ``Interrupted``.
    """
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(body)
    except KeyboardInterrupt:
        raise Interrupted() from None
