"""The declaration of a kind: everything the server, clients and CLI need to know about it.

A kind is declared once (in ``shoal.api.kinds``) as a ``Kind`` value; nothing else in the
code base repeats its group, plural, schema, defaults, validation or table columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shoal.api.errors import FieldError
from shoal.api.schema import Obj
from shoal.api.validation import dns1123_subdomain

Object = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """One column of ``kubectl get`` / ``shoal get`` output (a meta.k8s.io Table column).

    ``value`` returns the cell for one object; ``priority`` 1 columns appear only with
    ``-o wide``.
    """

    name: str
    value: Callable[[Object], Any]
    type: str = "string"  # string, integer, number, boolean, date
    priority: int = 0
    format: str = ""
    description: str = ""


@dataclass(frozen=True)
class Scale:
    """Where the ``scale`` subresource finds replicas and the selector in an object."""

    spec_replicas: tuple[str, ...] = ("spec", "replicas")
    status_replicas: tuple[str, ...] = ("status", "replicas")
    selector: tuple[str, ...] = ("spec", "selector")


@dataclass(frozen=True)
class Kind:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    schema: Obj  # the whole object: apiVersion, kind, metadata, spec/data, status
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # Checks the object's name; returns problems as sentences.
    name_rule: Callable[[str], list[str]] = dns1123_subdomain
    has_status: bool = True  # the kind has a status subresource
    # Whether a create keeps the status it is given. Kubernetes resets it for most kinds
    # (status is what controllers observe, not what users declare); an agent registers its
    # Node with its status.
    keeps_status_on_create: bool = False
    scale: Scale | None = None
    # The ``binding`` subresource: how the scheduler, and only it, assigns the object (a Pod)
    # to a node; the rest of the spec stays immutable.
    bindable: bool = False
    columns: tuple[Column, ...] = ()
    # Computed defaults beyond the schema's simple ones; mutates a fresh copy in place.
    default: Callable[[Object], None] | None = None
    # Semantic checks on a normalized, defaulted object.
    validate: Callable[[Object], list[FieldError]] | None = None
    # Extra checks on an update, given (new, old): immutable fields and such.
    validate_update: Callable[[Object, Object], list[FieldError]] | None = None
    # Field selectors beyond metadata.name and metadata.namespace.
    field_selectors: dict[str, Callable[[Object], str]] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """``deployments.apps`` or ``pods``: how Kubernetes names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def verbs(self) -> list[str]:
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

    def key_prefix(self, namespace: str | None = None) -> str:
        """The store prefix of every object of this kind (in one namespace when given)."""
        group = self.group or "core"
        base = f"/registry/{group}/{self.plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.key_prefix()}{namespace}/{name}"
        return f"{self.key_prefix()}{name}"
