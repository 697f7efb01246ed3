"""A client for a shoal (or any Kubernetes-compatible) API server over HTTP, on httpx.

With several managers (``fallbacks``, or ``use_servers`` as the list changes) the client talks
to one at a time and moves to the next when that one cannot be reached: a request that failed
to connect is retried there at once (it never reached the first), any other transport failure
is reported to the caller (it may have been applied) and the next request goes elsewhere.
Refusals, 503s included, are answers and never cause a move: every manager shares the store.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson

from shoal.api import Kind, Object
from shoal.api.errors import ApiError, ServiceUnavailable
from shoal.client._interface import MERGE_PATCH, WatchEvent, binding, object_namespace, object_path
from shoal.client.kubeconfig import Credentials
from shoal.security.tls import client_context_from_pem


class HttpClient:
    def __init__(
        self,
        server: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits | None = None,
        credentials: Credentials | None = None,
        fallbacks: Sequence[str] = (),
    ) -> None:
        self.server = server.rstrip("/")
        self.servers = [self.server]
        self.use_servers(fallbacks)
        self._timeout, self._transport, self._limits = timeout, transport, limits
        self.credentials = credentials or Credentials()
        self._http = self._client(self.credentials, timeout, transport, limits)

    def use_servers(self, servers: Sequence[str]) -> None:
        """Fail over along ``servers`` from now on (the current server stays first)."""
        others = [s.rstrip("/") for s in servers if s.rstrip("/") != self.server]
        self.servers = [self.server, *dict.fromkeys(others)]

    async def _fail_over(self, failed: str) -> None:
        """``failed`` did not answer: move to the server after it, unless another request
        already moved (or there is nowhere to go)."""
        if self.server != failed or len(self.servers) < 2:
            return
        position = self.servers.index(failed) if failed in self.servers else -1
        self.server = self.servers[(position + 1) % len(self.servers)]
        old = self._http
        self._http = self._client(self.credentials, self._timeout, self._transport, self._limits)
        await old.aclose()  # its open streams went to the server that stopped answering

    def _client(
        self,
        credentials: Credentials,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
        limits: httpx.Limits | None,
    ) -> httpx.AsyncClient:
        headers = {"Accept": "application/json", "User-Agent": "shoal-client"}
        if credentials.token:
            headers["Authorization"] = f"Bearer {credentials.token}"
        verify: ssl.SSLContext | bool = True
        if self.server.startswith("https://"):
            verify = client_context_from_pem(credentials.ca_pem, credentials.cert_pem, credentials.key_pem)
        return httpx.AsyncClient(
            base_url=self.server,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=100),
            headers=headers,
            verify=verify,
        )

    async def reload(self, credentials: Credentials) -> None:
        """Use new credentials (a renewed certificate) from the next request on. Requests and
        watches still open on the old connections end; their callers retry, as after any
        dropped connection."""
        old = self._http
        self.credentials = credentials
        self._http = self._client(
            credentials,
            self._timeout,
            self._transport,
            self._limits,
        )
        await old.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Any:
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if content is not None else None
        return _result(await self._send(method, path, content=content, headers=headers, params=params))

    async def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One request, moved to the next server while the current one cannot be connected to."""
        for _ in range(len(self.servers)):
            http, server = self._http, self.server
            try:
                return await http.request(method, path, **options)
            except (httpx.ConnectError, httpx.ConnectTimeout) as err:
                failure: httpx.HTTPError = err  # never sent: safe to send elsewhere
                await self._fail_over(server)
            except httpx.HTTPError as err:
                await self._fail_over(server)
                raise ServiceUnavailable(f"cannot reach the API server at {server}: {err}") from None
        raise ServiceUnavailable(f"cannot reach the API server at {', '.join(self.servers)}: {failure}")

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Object:
        ns = object_namespace(kind, {}, namespace)
        result: Object = await self._request("GET", object_path(kind, ns, name))
        return result

    async def list(
        self, kind: Kind, namespace: str | None = None, *, label_selector: str = "", field_selector: str = ""
    ) -> Object:
        params = _selectors(label_selector, field_selector)
        result: Object = await self._request("GET", object_path(kind, namespace), params=params)
        return result

    async def create(
        self, kind: Kind, obj: Object, namespace: str | None = None, *, dry_run: bool = False
    ) -> Object:
        ns = object_namespace(kind, obj, namespace)
        params = {"dryRun": "All"} if dry_run else None
        result: Object = await self._request("POST", object_path(kind, ns), body=obj, params=params)
        return result

    async def update(
        self, kind: Kind, obj: Object, *, subresource: str = "", dry_run: bool = False
    ) -> Object:
        ns = object_namespace(kind, obj, None)
        path = object_path(kind, ns, obj["metadata"]["name"], subresource)
        params = {"dryRun": "All"} if dry_run else None
        result: Object = await self._request("PUT", path, body=obj, params=params)
        return result

    async def patch(
        self,
        kind: Kind,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = MERGE_PATCH,
        subresource: str = "",
    ) -> Object:
        ns = object_namespace(kind, {}, namespace)
        path = object_path(kind, ns, name, subresource)
        result: Object = await self._request("PATCH", path, body=patch, content_type=patch_type)
        return result

    async def delete(
        self, kind: Kind, name: str, namespace: str | None = None, *, propagation_policy: str = ""
    ) -> Object:
        ns = object_namespace(kind, {}, namespace)
        params = {"propagationPolicy": propagation_policy} if propagation_policy else None
        result: Object = await self._request("DELETE", object_path(kind, ns, name), params=params)
        return result

    async def bind(self, kind: Kind, name: str, namespace: str | None, node: str) -> None:
        path = object_path(kind, object_namespace(kind, {}, namespace), name, "binding")
        await self._request("POST", path, body=binding(name, node))

    async def watch(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> AsyncIterator[WatchEvent]:
        params = {"watch": "1", **_selectors(label_selector, field_selector)}
        if resource_version:
            params["resourceVersion"] = resource_version
        server = self.server
        try:
            async with self._http.stream(
                "GET", object_path(kind, namespace), params=params, timeout=httpx.Timeout(30.0, read=None)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _result(response)
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError.from_status(status, int(status.get("code") or 500))
                    yield WatchEvent(event["type"], event["object"])
        except httpx.HTTPError as err:
            await self._fail_over(server)
            raise ServiceUnavailable(f"watch on {server} ended: {err}") from None

    async def get_json(self, path: str) -> Any:
        """GET one of shoal's own endpoints: the JSON answer, or the refusal raised."""
        return await self._request("GET", path)

    async def post(self, path: str, body: Any) -> Any:
        """POST a JSON body to one of shoal's own endpoints (``/shoal/v1/...``): the JSON
        answer, or the refusal raised as an ApiError."""
        return await self._request("POST", path, body=body)

    async def raw(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """A request as it is, for callers that need headers or non-JSON answers."""
        return await self._send(method, path, content=body, headers=headers)

    async def stream(self, path: str, params: dict[str, str] | None = None) -> AsyncIterator[bytes]:
        """The body of a GET as it arrives (a pod's log), with no read timeout; an error
        status raises as ``_request`` does."""
        try:
            async with self._http.stream(
                "GET", path, params=params, headers={"Accept": "*/*"}, timeout=httpx.Timeout(30.0, read=None)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _result(response)
                async for chunk in response.aiter_raw():
                    yield chunk
        except httpx.HTTPError as err:
            raise ServiceUnavailable(f"cannot reach the API server at {self.server}: {err}") from None

    async def close(self) -> None:
        await self._http.aclose()


def _selectors(label_selector: str, field_selector: str) -> dict[str, str]:
    params = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _result(response: httpx.Response) -> Any:
    try:
        body = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        body = {}
    if response.status_code >= 400:
        if isinstance(body, dict) and body.get("kind") == "Status":
            raise ApiError.from_status(body, response.status_code)
        text = response.text.strip()[:200] or response.reason_phrase
        raise ApiError.from_status({"message": f"HTTP {response.status_code}: {text}"}, response.status_code)
    return body
