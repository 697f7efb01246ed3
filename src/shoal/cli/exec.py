"""``shoal exec POD [-c CONTAINER] [-i] [-t] -- CMD ARGS...``: run a command in a container, as
``kubectl exec`` does.

The pod's ``exec`` subresource is a WebSocket (Kubernetes' ``v5.channel.k8s.io``, see
``shoal.api.remotecommand``) that the manager relays to the node's agent. The command's stdout
and stderr come out here as they are written; ``-i`` sends this terminal's stdin (its end closes
the command's stdin); ``-t`` gives the command a terminal (this one goes raw meanwhile, and
window size changes follow). The exit status is the command's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import threading
import tty as ttymod
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import click
import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from shoal.api import remotecommand as rc
from shoal.api.errors import ApiError, ServiceUnavailable
from shoal.api.kinds import POD
from shoal.cli.context import Settings, pass_settings, run
from shoal.cli.resources import namespace_option
from shoal.client._interface import object_path
from shoal.client.kubeconfig import Credentials
from shoal.security.tls import client_context_from_pem

CONNECT_TIMEOUT = 30.0
CHUNK = 65536


@click.command("exec")
@click.argument("pod", metavar="POD")
@click.argument("command", nargs=-1, required=True, metavar="-- COMMAND [ARGS]...")
@click.option(
    "-c", "--container", default="", metavar="NAME", help="The container (needed when the pod has several)."
)
@click.option("-i", "--stdin", "stdin", is_flag=True, help="Pass this terminal's stdin to the command.")
@click.option("-t", "--tty", "tty", is_flag=True, help="Give the command a terminal.")
@namespace_option
@pass_settings
def exec_(
    settings: Settings,
    pod: str,
    command: tuple[str, ...],
    container: str,
    stdin: bool,
    tty: bool,
    namespace: str | None,
) -> int:
    """Run COMMAND in a container of POD; exit with its exit status."""
    params: list[tuple[str, str]] = [("command", c) for c in command]
    if container:
        params.append(("container", container))
    params += [
        ("stdin", "true" if stdin else "false"),
        ("stdout", "true"),
        ("stderr", "false" if tty else "true"),
        ("tty", "true" if tty else "false"),
    ]
    connection = settings.connection()
    server = connection.server.rstrip("/")
    path = object_path(POD, settings.namespace(namespace), pod.removeprefix("pod/"), "exec")
    url = f"{'wss' if server.startswith('https:') else 'ws'}{server[server.index(':') :]}{path}"
    return run(_exec(server, f"{url}?{urlencode(params)}", connection.credentials, stdin=stdin, tty=tty))


async def _exec(server: str, url: str, credentials: Credentials, *, stdin: bool, tty: bool) -> int:
    tls = None
    if url.startswith("wss:"):
        tls = client_context_from_pem(credentials.ca_pem, credentials.cert_pem, credentials.key_pem)
    headers = {"Authorization": f"Bearer {credentials.token}"} if credentials.token else None
    try:
        connection = await connect(
            url,
            ssl=tls,
            additional_headers=headers,
            subprotocols=[websockets.Subprotocol(rc.V5)],
            open_timeout=CONNECT_TIMEOUT,
            max_size=None,
            compression=None,
        )
    except InvalidStatus as err:
        raise _refusal(err) from None
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as err:
        raise ServiceUnavailable(f"cannot reach the API server at {server}: {err}") from None
    async with connection:
        with _raw_terminal(tty and stdin):
            return await _session(connection, stdin=stdin, tty=tty)


def _refusal(err: InvalidStatus) -> ApiError:
    body = err.response.body or b""
    try:
        status = orjson.loads(body)
    except orjson.JSONDecodeError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        return ApiError.from_status(status, err.response.status_code)
    text = body.decode(errors="replace").strip()[:200]
    return ApiError.from_status({"message": f"HTTP {err.response.status_code}: {text}"}, 500)


async def _session(connection: ClientConnection, *, stdin: bool, tty: bool) -> int:
    tasks: list[asyncio.Task[None]] = []
    if stdin:
        tasks.append(asyncio.create_task(_send_stdin(connection)))
    if tty:
        tasks.append(asyncio.create_task(_send_sizes(connection)))
    try:
        status = await _receive(connection)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if status is None:
        raise click.ClickException("the connection closed before the command's exit status arrived")
    code = rc.exit_code_of(status)
    if code is None:
        raise click.ClickException(str(status.get("message") or "the command failed"))
    return code


async def _receive(connection: ClientConnection) -> dict[str, Any] | None:
    """Write the command's output as it comes; return the error channel's Status."""
    status: dict[str, Any] | None = None
    outputs = {rc.STDOUT: sys.stdout.buffer, rc.STDERR: sys.stderr.buffer}
    try:
        async for message in connection:
            data = message if isinstance(message, bytes) else message.encode()
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel in outputs:
                outputs[channel].write(payload)
                outputs[channel].flush()
            elif channel == rc.ERROR and payload:
                with contextlib.suppress(orjson.JSONDecodeError):
                    decoded = orjson.loads(payload)
                    status = decoded if isinstance(decoded, dict) else None
    except ConnectionClosed:
        pass
    return status


async def _send_stdin(connection: ClientConnection) -> None:
    """This process's stdin to the command, read on a thread (it may be a file, a pipe or a
    terminal); its end closes the command's stdin."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
    fd = sys.stdin.fileno()

    def read() -> None:  # a daemon thread: a read blocked on a terminal must not hold the exit
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except OSError:
                chunk = b""
            try:
                asyncio.run_coroutine_threadsafe(chunks.put(chunk), loop).result()
            except (RuntimeError, asyncio.CancelledError):
                return  # the loop is gone: the command ended
            if not chunk:
                return

    threading.Thread(target=read, name="shoal-exec-stdin", daemon=True).start()
    while chunk := await chunks.get():
        await connection.send(bytes([rc.STDIN]) + chunk)
    await connection.send(bytes([rc.CLOSE, rc.STDIN]))


async def _send_sizes(connection: ClientConnection) -> None:
    """The terminal's size now and after every change (SIGWINCH)."""
    if not sys.stdout.isatty():
        return
    changed = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGWINCH, changed.set)
    try:
        while True:
            size = os.get_terminal_size(sys.stdout.fileno())
            await connection.send(rc.resize_message(size.columns, size.lines))
            await changed.wait()
            changed.clear()
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)


@contextlib.contextmanager
def _raw_terminal(wanted: bool) -> Iterator[None]:
    """This terminal in raw mode while the command has one: keys go to it as typed (Ctrl-C
    included), and its terminal does the echoing."""
    if not wanted or not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    ttymod.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
