"""PolicyRules compiled for matching, with Kubernetes' semantics (``rbac/v1/helpers``).

A rule allows a resource request when its verbs, API groups, resources and resource names all
match (``*`` matches everything; ``*`` in resources covers subresources too; ``*/log`` matches
the ``log`` subresource of any resource; no resourceNames means every name), and a
non-resource request when its verbs and nonResourceURLs match (a URL ending in ``*`` matches
that prefix). ``covers`` is the escalation check's "does the owner hold this atomic rule".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shoal.security.identity import RequestAttributes

ALL = "*"


@dataclass(frozen=True, slots=True)
class Rule:
    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    resource_names: frozenset[str] = frozenset()
    urls: frozenset[str] = frozenset()

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> Rule:
        return cls(
            frozenset(rule.get("verbs") or ()),
            frozenset(rule.get("apiGroups") or ()),
            frozenset(rule.get("resources") or ()),
            frozenset(rule.get("resourceNames") or ()),
            frozenset(rule.get("nonResourceURLs") or ()),
        )

    def to_object(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, values in (
            ("apiGroups", self.api_groups),
            ("resources", self.resources),
            ("resourceNames", self.resource_names),
            ("nonResourceURLs", self.urls),
            ("verbs", self.verbs),
        ):
            if values:
                out[key] = sorted(values)
        return out

    def allows(self, attrs: RequestAttributes) -> bool:
        if ALL not in self.verbs and attrs.verb not in self.verbs:
            return False
        if not attrs.is_resource_request:
            return _url_matches(self.urls, attrs.path)
        if ALL not in self.api_groups and attrs.api_group not in self.api_groups:
            return False
        if not _resource_matches(self.resources, attrs.resource, attrs.subresource):
            return False
        return not self.resource_names or attrs.name in self.resource_names

    def covers(self, sub: Rule) -> bool:
        """Whether this rule grants everything the atomic rule ``sub`` grants."""
        if ALL not in self.verbs and not sub.verbs <= self.verbs:
            return False
        if sub.urls:
            return all(_url_matches(self.urls, url) for url in sub.urls)
        if ALL not in self.api_groups and not sub.api_groups <= self.api_groups:
            return False
        for resource in sub.resources:
            base, _, subresource = resource.partition("/")
            if not _resource_matches(self.resources, base, subresource):
                return False
        if not self.resource_names:
            return True
        return bool(sub.resource_names) and sub.resource_names <= self.resource_names


def _resource_matches(resources: frozenset[str], resource: str, subresource: str) -> bool:
    if ALL in resources:
        return True
    combined = f"{resource}/{subresource}" if subresource else resource
    if combined in resources:
        return True
    return bool(subresource) and f"*/{subresource}" in resources


def _url_matches(urls: frozenset[str], path: str) -> bool:
    for url in urls:
        if url in (ALL, path):
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def breakdown(rule: Rule) -> list[Rule]:
    """One atomic rule per (group, resource, verb[, name]) or (url, verb), as Kubernetes'
    ``BreakdownRule``."""
    out: list[Rule] = []
    for group in sorted(rule.api_groups):
        for resource in sorted(rule.resources):
            for verb in sorted(rule.verbs):
                base = Rule(frozenset({verb}), frozenset({group}), frozenset({resource}))
                if rule.resource_names:
                    out += [
                        Rule(base.verbs, base.api_groups, base.resources, frozenset({n}))
                        for n in sorted(rule.resource_names)
                    ]
                else:
                    out.append(base)
    for url in sorted(rule.urls):
        for verb in sorted(rule.verbs):
            out.append(Rule(frozenset({verb}), urls=frozenset({url})))
    return out


def compact(rules: Iterable[Rule]) -> list[Rule]:
    """Atomic rules differing only in verbs merged into one (Kubernetes' ``CompactRules``)."""
    merged: dict[tuple[frozenset[str], ...], set[str]] = {}
    for rule in rules:
        key = (rule.api_groups, rule.resources, rule.resource_names, rule.urls)
        merged.setdefault(key, set()).update(rule.verbs)
    return [Rule(frozenset(verbs), *key) for key, verbs in merged.items()]


def _go_quoted(values: frozenset[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in sorted(values)) + "]"


def compact_string(rule: Rule) -> str:
    """``{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}``, as Kubernetes
    prints a rule in messages."""
    parts = [
        f"{label}:{_go_quoted(values)}"
        for label, values in (
            ("APIGroups", rule.api_groups),
            ("Resources", rule.resources),
            ("NonResourceURLs", rule.urls),
            ("ResourceNames", rule.resource_names),
            ("Verbs", rule.verbs),
        )
        if values
    ]
    return "{" + ", ".join(parts) + "}"
