"""Who makes a request and what it asks: the values authentication produces and authorizers
read (Kubernetes' ``user.Info`` and ``authorizer.Attributes``).

Verbs are Kubernetes' names: ``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``,
``delete``, ``deletecollection`` for resources (a request on a collection, with no name, is
``list``, ``watch``, ``create`` or ``deletecollection``), and the HTTP method in lower case
(``get``, ``post``, ...) for non-resource paths such as ``/healthz``. A request for a
``namespaces`` object carries that namespace's name as its namespace too, as Kubernetes'
RequestInfo does (so a RoleBinding of ``view`` lets one read its own Namespace).
"""

from __future__ import annotations

from dataclasses import dataclass

MASTERS_GROUP = "system:masters"
AUTHENTICATED_GROUP = "system:authenticated"
NODES_GROUP = "shoal:nodes"

RESOURCE_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
COLLECTION_VERBS = ("list", "watch", "create", "deletecollection")


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """One request as authorizers see it. ``resource`` empty means a non-resource request
    for ``path``; ``api_group`` is ``""`` for the core group."""

    user: UserInfo
    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    # The request's field selector (list/watch): the Node authorizer checks the agent's
    # ``spec.nodeName=<node>``.
    field_selector: str = ""

    @property
    def is_resource_request(self) -> bool:
        return bool(self.resource)

    @property
    def qualified_resource(self) -> str:
        """``pods`` or ``deployments.apps``: Kubernetes' GroupResource string."""
        return f"{self.resource}.{self.api_group}" if self.api_group else self.resource


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""
