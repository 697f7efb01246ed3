"""The audit log: one JSON line per mutating request, in ``<data dir>/audit.log``.

``AuditMiddleware`` is a pure ASGI middleware: it reads the verb and the object from the
request line, passes the body and the response through untouched (a watch, a log stream or an
exec session streams as before), takes the status code from ``http.response.start`` (for a
WebSocket: 101 once accepted, else the refusal's status) and writes one line when the request
ends. Recorded: create, update, patch, delete, deletecollection on resources and their
subresources (bindings, status, scale), exec, and POSTs to shoal's own non-resource endpoints
(join, unlock); reads are not. Bodies are never recorded (a Secret's data, a join token, an
unlock key stay out of the log).

Each line::

    {"time": "2026-11-22T07:00:00.123456Z", "requestID": "...", "user": "system:anonymous",
     "verb": "create", "resource": "/secrets", "namespace": "default", "name": "db",
     "uri": "/api/v1/namespaces/default/secrets", "code": 201, "sourceIP": "127.0.0.1"}

``resource`` is ``group/resource[/subresource]`` as Kubernetes' audit ``objectRef`` names it.
The user is ``scope["shoal.user"]`` when an authenticator set it (a name, or a UserInfo:
its name and groups), else ``system:anonymous``; it is read when the request ends, so an
authenticator inside this middleware may set it in the shared scope.
The request id is the client's ``X-Request-Id`` when sent, else a new one; it is returned in
the ``Audit-Id`` response header, as Kubernetes does.

``AuditLog`` writes through a buffered file, flushed per line (microseconds: no writer task
needed), and rotates by size like Kubernetes' log backend: ``audit.log`` becomes
``audit.log.1`` (older ones shift up) once it would exceed ``max_bytes``; ``backups`` old files
are kept. A failure to write is logged and never fails the request.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoal.security.authn import USER_SCOPE_KEY

log = logging.getLogger(__name__)

ANONYMOUS = "system:anonymous"
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUPS = 5
FILE_NAME = "audit.log"

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_SUBRESOURCES = ("status", "scale", "binding", "log", "exec")
_MAX_ANSWER = 4 * 1024 * 1024


class AuditLog:
    """An append-only JSON-lines file rotated by size."""

    def __init__(
        self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._file: IO[bytes] | None = None
        self._size = 0

    def write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record) + b"\n"
        try:
            if self._file is None:
                self._open()
            if self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
            assert self._file is not None
            self._file.write(line)
            self._file.flush()
            self._size += len(line)
        except OSError as err:
            log.error("cannot write the audit log %s: %s", self.path, err)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "ab", buffering=64 * 1024)
        self._size = self._file.tell() or self.path.stat().st_size

    def _rotate(self) -> None:
        self.close()
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
        else:
            for n in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._open()


def now_rfc3339_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def describe(method: str, path: str) -> dict[str, str] | None:
    """What a request does, as audit fields; None for a request that changes nothing."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        if method == "POST" and parts[:1] == ["shoal"]:
            return {
                "verb": "create",
                "group": "shoal.io",
                "resource": "/".join(parts[2:]),
                "subresource": "",
                "namespace": "",
                "name": "",
            }
        return None
    if rest[:1] == ["watch"]:
        return None
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 and rest[2] in _SUBRESOURCES else ""
    if subresource == "exec":
        verb = "create"  # a command run in a container, by POST or by WebSocket GET
    elif method in ("GET", "HEAD", "OPTIONS"):
        return None
    elif method == "DELETE" and not name:
        verb = "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return {
        "verb": verb,
        "group": group,
        "resource": resource,
        "subresource": subresource,
        "namespace": namespace,
        "name": name,
    }


class AuditMiddleware:
    """Records mutating requests of the wrapped ASGI app in ``audit``."""

    def __init__(self, app: ASGIApp, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = "GET" if kind == "websocket" else scope["method"]
        what = describe(method, scope.get("path", ""))
        if what is None:
            await self.app(scope, receive, send)
            return
        received = now_rfc3339_micro()
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        code = 0
        # A create names its object in the answer (generateName included): keep that small
        # JSON body to read the name from; nothing else of any response is kept.
        keep_answer = what["verb"] == "create" and not what["name"] and what["group"] != "shoal.io"
        answer: list[bytes] = []

        async def send_and_see(message: Message) -> None:
            nonlocal code, keep_answer
            event = message["type"]
            if event in ("http.response.start", "websocket.http.response.start"):
                code = int(message["status"])
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"audit-id", request_id.encode())],
                }
            elif event == "http.response.body" and keep_answer:
                answer.append(message.get("body", b""))
                if sum(map(len, answer)) > _MAX_ANSWER:
                    answer.clear()
                    keep_answer = False
            elif event == "websocket.accept":
                code = 101
            elif event == "websocket.close" and not code:
                code = 403  # closed before accepting: the server answers 403
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        except BaseException:
            code = code or 500
            raise
        finally:
            client = scope.get("client")
            group, resource, sub = what["group"], what["resource"], what["subresource"]
            self.audit.write(
                {
                    "time": received,
                    "requestID": request_id,
                    **_user(scope.get(USER_SCOPE_KEY)),
                    "verb": what["verb"],
                    "resource": f"{group}/{resource}" + (f"/{sub}" if sub else ""),
                    "namespace": what["namespace"],
                    "name": what["name"] or _created_name(answer, code),
                    "uri": _uri(scope),
                    "code": code,
                    "sourceIP": client[0] if client else "",
                }
            )


def _user(user: Any) -> dict[str, Any]:
    """The user an authenticator put in the scope: a name, or a value with ``name`` and
    ``groups`` (``security.identity.UserInfo``)."""
    if not user:
        return {"user": ANONYMOUS}
    if isinstance(user, str):
        return {"user": user}
    fields: dict[str, Any] = {"user": str(getattr(user, "name", user))}
    groups = getattr(user, "groups", None)
    if groups:
        fields["groups"] = list(groups)
    return fields


def _created_name(answer: list[bytes], code: int) -> str:
    if not answer or code >= 300:
        return ""
    try:
        body = orjson.loads(b"".join(answer))
    except orjson.JSONDecodeError:
        return ""
    meta = body.get("metadata") if isinstance(body, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))[:128]
    return ""


def _uri(scope: Scope) -> str:
    query = scope.get("query_string", b"")
    path = str(scope.get("path", ""))
    return f"{path}?{query.decode('latin-1')}" if query else path
