"""nodeSelector and required node affinity, with Kubernetes' matching rules.

- ``nodeSelector``: every key must be a node label with exactly that value;
- ``requiredDuringSchedulingIgnoredDuringExecution``: the terms are ORed, the requirements
  of a term ANDed; a term with no requirements, or an empty list of terms, matches nothing
  (component-helpers ``nodeaffinity``). ``matchFields`` knows only ``metadata.name``.
Both report the same reason, as kube-scheduler's NodeAffinity plugin does.
"""

from __future__ import annotations

from typing import Any, Final

from shoal.scheduler.filters.base import Filter
from shoal.scheduler.podinfo import PodInfo
from shoal.scheduler.snapshot import NodeInfo

ERR_AFFINITY: Final = "node(s) didn't match Pod's node affinity/selector"


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def requirement_matches(requirement: dict[str, Any], value: str | None) -> bool:
    """One NodeSelectorRequirement against the node's value for its key (None: absent)."""
    operator = requirement.get("operator")
    values = requirement.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):
        # Both sides must be integers, and exactly one value given; anything else fails.
        if value is None or len(values) != 1:
            return False
        mine, theirs = _integer(value), _integer(str(values[0]))
        if mine is None or theirs is None:
            return False
        return mine > theirs if operator == "Gt" else mine < theirs
    return False  # an unknown operator never matches (validation refuses it anyway)


def term_matches(term: dict[str, Any], node: NodeInfo) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    for requirement in expressions:
        if not requirement_matches(requirement, node.labels.get(requirement.get("key") or "")):
            return False
    for requirement in fields:
        value = node.name if requirement.get("key") == "metadata.name" else None
        if requirement.get("operator") not in ("In", "NotIn") or not requirement_matches(requirement, value):
            return False
    return True


def _required(pod: PodInfo) -> dict[str, Any] | None:
    affinity = (pod.spec.get("affinity") or {}).get("nodeAffinity") or {}
    required: dict[str, Any] | None = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    return required


class NodeSelector(Filter):
    name = "NodeSelector"
    reason = ERR_AFFINITY

    def applies_to(self, pod: PodInfo) -> bool:
        return bool(pod.spec.get("nodeSelector"))

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        labels = node.labels
        return all(labels.get(k) == v for k, v in pod.spec["nodeSelector"].items())


class NodeAffinity(Filter):
    name = "NodeAffinity"
    reason = ERR_AFFINITY

    def applies_to(self, pod: PodInfo) -> bool:
        return _required(pod) is not None

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        required = _required(pod) or {}
        return any(term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])
