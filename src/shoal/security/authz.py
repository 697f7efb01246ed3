"""Authorization of every API request, and the caches that feed it.

The order, as kube-apiserver's ``--authorization-mode=Node,RBAC``: what is open to everyone
(health, version, discovery and the join exchange; Kubernetes' ``system:public-info-viewer``
and ``system:discovery``), then the Node authorizer for nodes, then RBAC (where
``system:masters`` is always allowed). Nodes get no RBAC: what they may do follows from the
pods bound to them.

``SecurityCache`` is what the checks read without I/O: informers in the manager over the RBAC
kinds, the Pods (indexed by node, for the Node authorizer), the revocation list and the user
tokens. Each change builds a new ``PolicySnapshot``, as ``RBACAuthorizer`` wants.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable

from shoal.api import REGISTRY, Kind, Object
from shoal.api.errors import ApiError
from shoal.client._interface import Client
from shoal.client.informer import Informer
from shoal.security import pki, usertokens
from shoal.security.identity import NODES_GROUP, Decision, RequestAttributes
from shoal.security.nodeauthz import NodeAuthorizer
from shoal.security.rbac import PolicySnapshot, RBACAuthorizer
from shoal.security.usertokens import TokenRecord

# Open to every client, authenticated or not: nothing here tells more than the server's kind.
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version", "/shoal/v1/join")
# Open to every authenticated client: what kubectl reads before anything else.
DISCOVERY_PATHS = ("/api", "/apis", "/openapi/v3")
RENEW_PATH = "/shoal/v1/renew"  # nodes only: the answer is signed for the caller's own name
MANAGERS_PATH = "/shoal/v1/managers"  # where agents learn the managers to fail over to


def _kind(group: str, resource: str) -> Kind:
    kind = REGISTRY.by_resource(group, "v1", resource)
    assert kind is not None, f"{resource}.{group} is not registered"
    return kind


def _one(client: Client, kind: Kind, namespace: str, name: str) -> Informer:
    """An informer of a single object."""
    return Informer(client, kind, namespace, field_selector=f"metadata.name={name}")


class SecurityCache:
    """What authentication and authorization read, kept current by watches through ``client``
    (the manager's in-process client)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        rbac = "rbac.authorization.k8s.io"
        self._roles = Informer(client, _kind(rbac, "roles"))
        self._cluster_roles = Informer(client, _kind(rbac, "clusterroles"))
        self._role_bindings = Informer(client, _kind(rbac, "rolebindings"))
        self._cluster_role_bindings = Informer(client, _kind(rbac, "clusterrolebindings"))
        self._pods = Informer(client, _kind("", "pods"))
        self._revoked = Informer(
            client,
            _kind("", "configmaps"),
            pki.REVOKED_NAMESPACE,
            field_selector=f"metadata.name={pki.REVOKED_NAME}",
        )
        self._tokens = Informer(
            client, _kind("", "secrets"), field_selector=f"metadata.name={usertokens.NAME}"
        )
        self._informers = [
            self._roles,
            self._cluster_roles,
            self._role_bindings,
            self._cluster_role_bindings,
            self._pods,
            self._revoked,
            self._tokens,
        ]
        self._snapshot = PolicySnapshot()
        self._pods_by_node: dict[str, list[Object]] = {}
        self._revoked_serials: frozenset[int] = frozenset()
        self._token_records: dict[str, TokenRecord] = {}
        for informer in self._informers:
            informer.add_handler(lambda _old, _new: self._rebuild())
        self.synced = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for informer in self._informers:
                tasks.create_task(informer.run(), name=f"security cache: {informer.kind.resource}")
            for informer in self._informers:
                # The user tokens are a Secret: an autolocked cluster cannot read them until
                # `shoal unlock`, which must reach a listening server. Until they come, no
                # token authenticates.
                if informer is not self._tokens:
                    await informer.synced.wait()
            self._rebuild()
            self.synced.set()

    def _rebuild(self) -> None:
        self._snapshot = PolicySnapshot(
            roles=self._roles.list(),
            cluster_roles=self._cluster_roles.list(),
            role_bindings=self._role_bindings.list(),
            cluster_role_bindings=self._cluster_role_bindings.list(),
        )
        by_node: dict[str, list[Object]] = defaultdict(list)
        for pod in self._pods.list():
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                by_node[node].append(pod)
        self._pods_by_node = dict(by_node)
        self._revoked_serials = frozenset().union(*(pki.serials_of(c) for c in self._revoked.list()))
        records: dict[str, TokenRecord] = {}
        for secret in self._tokens.list():
            records.update(usertokens.records(secret))
        self._token_records = records

    def snapshot(self) -> PolicySnapshot:
        return self._snapshot

    def pods_on_node(self, node: str) -> Iterable[Object]:
        return self._pods_by_node.get(node, ())

    def revoked(self) -> frozenset[int]:
        return self._revoked_serials

    def token(self, digest: str) -> TokenRecord | None:
        return self._token_records.get(digest)

    async def lookup_token(self, digest: str) -> TokenRecord | None:
        """The record of ``digest`` read from the store now (the cache may lag a new token);
        None when it is not there or cannot be read."""
        secrets = _kind("", "secrets")
        try:
            secret = await self._client.get(secrets, usertokens.NAME, usertokens.NAMESPACE)
        except ApiError:
            return None
        return usertokens.records(secret).get(digest)


class Authorizer:
    """Public paths, then the Node authorizer, then RBAC; fed by ``SecurityCache`` or, in
    tests, by any two callables."""

    def __init__(
        self, snapshot: Callable[[], PolicySnapshot], pods_on_node: Callable[[str], Iterable[Object]]
    ) -> None:
        self.nodes = NodeAuthorizer(pods_on_node)
        self.rbac = RBACAuthorizer(snapshot)

    @classmethod
    def of(cls, cache: SecurityCache) -> Authorizer:
        return cls(cache.snapshot, cache.pods_on_node)

    def authorize(self, attrs: RequestAttributes) -> Decision:
        if not attrs.is_resource_request:
            path = attrs.path.rstrip("/") or "/"
            if attrs.path in PUBLIC_PATHS or path in PUBLIC_PATHS:
                return Decision(True, "public")
            if attrs.user.name != "system:anonymous" and (
                path in DISCOVERY_PATHS or path.startswith(("/api/", "/apis/", "/openapi/"))
            ):
                return Decision(True, "discovery")
        if attrs.path == RENEW_PATH and attrs.verb == "post" and NODES_GROUP in attrs.user.groups:
            return Decision(True, "a node renews its own certificate")
        if attrs.path == MANAGERS_PATH and attrs.verb == "get" and NODES_GROUP in attrs.user.groups:
            return Decision(True, "a node reads the managers it may fail over to")
        decision = self.nodes.authorize(attrs)
        if decision is not None:
            return decision
        return self.rbac.authorize(attrs)
