"""Kubernetes' remote command protocol over WebSocket (``pods/exec``), shared by the agent, the
API server and ``shoal exec``.

The client picks a subprotocol; every message is binary, its first byte the channel:

====  =======  ==================================================================
  0   stdin    client -> server
  1   stdout   server -> client
  2   stderr   server -> client
  3   error    server -> client, once at the end: a ``Status`` (Success, or Failure
               with reason ``NonZeroExitCode`` and the code in ``details.causes``)
  4   resize   client -> server, JSON ``{"Width": w, "Height": h}``
 255  close    client -> server, v5 only: ``[255, channel]`` ends that stream
               (``[255, 0]``: stdin is done, the command reads EOF)
====  =======  ==================================================================

The server closes the connection after the error channel's Status. ``v4.channel.k8s.io`` is
the same without the close message (stdin then ends with the connection).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)  # what shoal speaks, preferred first
TRUE = ("1", "true", "True")

NON_ZERO_EXIT_CODE = "NonZeroExitCode"
EXIT_CODE_CAUSE = "ExitCode"


def choose_protocol(offered: Sequence[str]) -> str | None:
    """The first subprotocol the client offered that shoal speaks, if any."""
    return next((p for p in offered if p in PROTOCOLS), None)


def exit_status(code: int, command: Sequence[str]) -> dict[str, Any]:
    """The error channel's Status for a command that ended with ``code``."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {code}"
        ),
        "reason": NON_ZERO_EXIT_CODE,
        "details": {"causes": [{"reason": EXIT_CODE_CAUSE, "message": str(code)}]},
    }


def failure_status(message: str) -> dict[str, Any]:
    """The error channel's Status for a command that could not run at all."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"}


def encode_status(status: dict[str, Any]) -> bytes:
    return bytes([ERROR]) + orjson.dumps(status)


def exit_code_of(status: Any) -> int | None:
    """The command's exit code from an error channel Status: 0 for Success, the code of a
    NonZeroExitCode failure; None for any other failure (the message says what)."""
    if not isinstance(status, dict):
        return None
    if status.get("status") == "Success":
        return 0
    if status.get("reason") != NON_ZERO_EXIT_CODE:
        return None
    for cause in (status.get("details") or {}).get("causes") or []:
        if isinstance(cause, dict) and cause.get("reason") == EXIT_CODE_CAUSE:
            try:
                return int(cause.get("message", ""))
            except ValueError:
                return None
    return None


def resize_message(width: int, height: int) -> bytes:
    return bytes([RESIZE]) + orjson.dumps({"Width": width, "Height": height})


def parse_resize(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from a resize message's payload; None when it is not one."""
    try:
        size = orjson.loads(payload)
        return int(size["Width"]), int(size["Height"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
