"""The Node authorizer: what a node's agent may do, decided by what is bound to the node.

A request is a node's when its user is in the group ``shoal:nodes``; the user name is the node
name (the node certificate: CN = node name, O = shoal:nodes). Other users get no opinion
(``None``): RBAC decides for them. RBAC never decides for nodes. A node may:

- get, update, patch (and create) its own Node and its ``status``; list and watch Nodes
  (names and addresses of peers are not secret; Kubernetes' ``system:node`` allows it too);
- get, create, update, patch its own Lease in ``kube-node-lease``;
- list and watch Pods **only with the field selector** ``spec.nodeName=<itself>`` (what the
  agent's informer sends; Kubernetes ≥ 1.32 checks the same selector), get and delete the
  Pods bound to it, update and patch their ``status``;
- create, update and patch Events (anywhere: events say what happened to its pods);
- get (or list/watch one, by name) only the Secrets and ConfigMaps that Pods bound to it
  reference: volumes, projected sources, ``env[].valueFrom`` and ``envFrom``, of containers,
  init containers and ephemeral containers.

Everything else is refused, with Kubernetes' reasons (``no relationship found between node
"node-2" and this object``, ``can only read resources of this type``, ...). The relation
comes from a pod index the authorizer is fed: ``pods_on_node(node)`` returns the Pods whose
``spec.nodeName`` is that node (an informer cache indexed by node).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from shoal.security.identity import NODES_GROUP, Decision, RequestAttributes

Object = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"
READ = ("get", "list", "watch")


def node_name(attrs: RequestAttributes) -> str | None:
    return attrs.user.name if NODES_GROUP in attrs.user.groups and attrs.user.name else None


def _containers(spec: Object) -> Iterator[Object]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(field) or ()


def referenced(pod: Object) -> tuple[set[str], set[str]]:
    """The names of the Secrets and ConfigMaps a Pod uses (in the Pod's namespace)."""
    secrets: set[str] = set()
    config_maps: set[str] = set()
    spec = pod.get("spec") or {}
    for secret in spec.get("imagePullSecrets") or ():
        secrets.add(secret.get("name", ""))
    for volume in spec.get("volumes") or ():
        if "secret" in volume:
            secrets.add(volume["secret"].get("secretName", ""))
        if "configMap" in volume:
            config_maps.add(volume["configMap"].get("name", ""))
        for source in (volume.get("projected") or {}).get("sources") or ():
            if "secret" in source:
                secrets.add(source["secret"].get("name", ""))
            if "configMap" in source:
                config_maps.add(source["configMap"].get("name", ""))
    for container in _containers(spec):
        for env in container.get("env") or ():
            value_from = env.get("valueFrom") or {}
            if "secretKeyRef" in value_from:
                secrets.add(value_from["secretKeyRef"].get("name", ""))
            if "configMapKeyRef" in value_from:
                config_maps.add(value_from["configMapKeyRef"].get("name", ""))
        for env_from in container.get("envFrom") or ():
            if "secretRef" in env_from:
                secrets.add(env_from["secretRef"].get("name", ""))
            if "configMapRef" in env_from:
                config_maps.add(env_from["configMapRef"].get("name", ""))
    secrets.discard("")
    config_maps.discard("")
    return secrets, config_maps


class NodeAuthorizer:
    def __init__(self, pods_on_node: Callable[[str], Iterable[Object]]) -> None:
        self._pods_on_node = pods_on_node

    def authorize(self, attrs: RequestAttributes) -> Decision | None:
        """The decision for a node's request, or None when the user is not a node."""
        node = node_name(attrs)
        if node is None:
            return None
        if not attrs.is_resource_request:
            return self._non_resource(node, attrs)
        handler = _HANDLERS.get((attrs.api_group, attrs.resource))
        if handler is None:
            return _no_relationship(node)
        return handler(self, node, attrs)

    def _non_resource(self, node: str, attrs: RequestAttributes) -> Decision:
        if attrs.verb == "get" and (
            attrs.path in ("/healthz", "/livez", "/readyz", "/version", "/api", "/apis")
            or attrs.path.startswith(("/api/", "/apis/", "/openapi/"))
        ):
            return Decision(True, "")
        return _no_relationship(node)

    def _pods(self, node: str, namespace: str) -> Iterator[Object]:
        for pod in self._pods_on_node(node):
            if pod.get("metadata", {}).get("namespace", "") == namespace:
                yield pod

    def _has_pod(self, node: str, namespace: str, name: str) -> bool:
        return any(p["metadata"].get("name") == name for p in self._pods(node, namespace))

    def _node(self, node: str, attrs: RequestAttributes) -> Decision:
        if attrs.subresource not in ("", "status"):
            return _no_relationship(node)
        if not attrs.subresource and attrs.verb in ("list", "watch"):
            return Decision(True, "")
        if attrs.verb not in ("get", "create", "update", "patch"):
            return Decision(False, f'node "{node}" may not {attrs.verb} nodes')
        if attrs.name != node:
            return _no_relationship(node)
        return Decision(True, "")

    def _lease(self, node: str, attrs: RequestAttributes) -> Decision:
        if attrs.subresource or attrs.verb not in ("get", "create", "update", "patch"):
            return Decision(False, "can only access node lease with get, create, update, patch")
        if attrs.namespace != LEASE_NAMESPACE or attrs.name != node:
            return Decision(
                False, f'can only access node lease with the same name as the requesting node "{node}"'
            )
        return Decision(True, "")

    def _pod(self, node: str, attrs: RequestAttributes) -> Decision:
        if not attrs.subresource and attrs.verb in ("list", "watch"):
            if attrs.field_selector.replace(" ", "") in (f"spec.nodeName={node}", f"spec.nodeName=={node}"):
                return Decision(True, "")
            return Decision(False, f'can only list/watch pods with spec.nodeName field selector "{node}"')
        allowed = ("get", "delete") if not attrs.subresource else ("update", "patch", "get")
        if attrs.subresource not in ("", "status") or attrs.verb not in allowed:
            return _no_relationship(node)
        if not attrs.name:
            return Decision(False, "No Object name found")
        if not self._has_pod(node, attrs.namespace, attrs.name):
            return _no_relationship(node)
        return Decision(True, "")

    def _event(self, node: str, attrs: RequestAttributes) -> Decision:
        if attrs.verb in ("create", "update", "patch") and not attrs.subresource:
            return Decision(True, "")
        return _no_relationship(node)

    def _referenced(self, node: str, attrs: RequestAttributes) -> Decision:
        if attrs.verb not in READ:
            return Decision(False, "can only read resources of this type")
        if attrs.subresource:
            return Decision(False, "cannot read subresource")
        if not attrs.namespace:
            return Decision(False, "can only read namespaced object of this type")
        if not attrs.name:
            return Decision(False, "No Object name found")
        index = 0 if attrs.resource == "secrets" else 1
        for pod in self._pods(node, attrs.namespace):
            if attrs.name in referenced(pod)[index]:
                return Decision(True, "")
        return _no_relationship(node)


def _no_relationship(node: str) -> Decision:
    return Decision(False, f'no relationship found between node "{node}" and this object')


_Handler = Callable[[NodeAuthorizer, str, RequestAttributes], Decision]
_HANDLERS: dict[tuple[str, str], _Handler] = {
    ("", "nodes"): NodeAuthorizer._node,
    ("coordination.k8s.io", "leases"): NodeAuthorizer._lease,
    ("", "pods"): NodeAuthorizer._pod,
    ("", "events"): NodeAuthorizer._event,
    ("events.k8s.io", "events"): NodeAuthorizer._event,
    ("", "secrets"): NodeAuthorizer._referenced,
    ("", "configmaps"): NodeAuthorizer._referenced,
}
