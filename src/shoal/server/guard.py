"""The door of the API: authenticate, then authorize, every request (HTTP and WebSocket) before
it reaches a handler, as kube-apiserver's filter chain does.

A bad certificate or token is a 401, a refusal a 403 whose message names the user, verb,
resource and namespace; both are ``Status`` objects, and both are logged (one line each). The
user goes into the scope (``authn.USER_SCOPE_KEY``) for the handlers and the audit log.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import orjson

from shoal.api.errors import Unauthorized
from shoal.security.authn import USER_SCOPE_KEY, Authenticator
from shoal.security.authz import Authorizer
from shoal.security.identity import NODES_GROUP
from shoal.security.rbac import forbidden_status
from shoal.server.requestinfo import request_attributes

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
MAX_BODY = 3 * 1024 * 1024  # the API's own limit: a bigger body is refused by the handler anyway


async def deny(scope: Scope, send: Any, status: dict[str, Any]) -> None:
    """Answer a refused request (HTTP or a WebSocket upgrade) with ``status``, a metav1 Status."""
    body = orjson.dumps(status)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if scope["type"] == "websocket":
        # A refused WebSocket upgrade answers with a plain HTTP response (ASGI's denial response).
        await send({"type": "websocket.http.response.start", "status": status["code"], "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": status["code"], "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if not message.get("more_body") or size > MAX_BODY:
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Any:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _body_name(body: bytes) -> str:
    try:
        name = orjson.loads(body).get("metadata", {}).get("name", "")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


class Guard:
    """ASGI middleware around the API app."""

    def __init__(self, app: Any, authenticator: Authenticator, authorizer: Authorizer) -> None:
        self.app = app
        self.authenticator = authenticator
        self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        method = scope.get("method", "GET")
        try:
            user = await self.authenticator.authenticate_request(scope)
        except Unauthorized as err:
            log.warning("refused %s %s from %s: %s", method, scope["path"], client, err)
            await deny(scope, send, err.to_status())
            return
        scope[USER_SCOPE_KEY] = user  # the audit log names who was refused, too
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        attrs = request_attributes(user, method, scope["path"], query)
        if attrs.verb == "create" and not attrs.name and NODES_GROUP in user.groups:
            # A node may create only its own Node and Lease: the name is in the body.
            body = await _read_body(receive)
            attrs = replace(attrs, name=_body_name(body))
            receive = _replay(body)
        decision = self.authorizer.authorize(attrs)
        if not decision.allowed:
            status = forbidden_status(attrs, decision.reason)
            log.warning("forbidden from %s: %s", client, status["message"])
            await deny(scope, send, status)
            return
        await self.app(scope, receive, send)
