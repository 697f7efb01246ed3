"""Lookup of declared kinds by the names users and URLs give them."""

from __future__ import annotations

from collections.abc import Iterable

from shoal.api.kind import Kind


class Registry:
    """Every kind the API serves, found by (group, version, plural), by kind name, or by the
    loose names a user types (``deploy``, ``deployments``, ``deployment.apps``)."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self.kinds: tuple[Kind, ...] = tuple(kinds)
        self._by_resource = {(k.group, k.version, k.plural): k for k in self.kinds}
        self._by_kind = {(k.group, k.kind): k for k in self.kinds}
        self._by_api_version_kind = {(k.api_version, k.kind): k for k in self.kinds}
        self._by_name: dict[str, Kind] = {}
        for k in self.kinds:
            names = {k.plural, k.singular, k.kind.lower(), *k.short_names}
            for name in names:
                self._by_name.setdefault(name, k)
                if k.group:
                    self._by_name.setdefault(f"{name}.{k.group}", k)

    def by_resource(self, group: str, version: str, plural: str) -> Kind | None:
        return self._by_resource.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> Kind | None:
        return self._by_api_version_kind.get((api_version, kind))

    def by_group_kind(self, group: str, kind: str) -> Kind | None:
        return self._by_kind.get((group, kind))

    def lookup(self, name: str) -> Kind | None:
        """A kind from a user's word for it: plural, singular, kind or short name, any case,
        optionally qualified by group."""
        return self._by_name.get(name.lower())

    def groups(self) -> dict[str, list[str]]:
        """Each API group (``""`` for core) and its versions."""
        out: dict[str, list[str]] = {}
        for k in self.kinds:
            versions = out.setdefault(k.group, [])
            if k.version not in versions:
                versions.append(k.version)
        return out
