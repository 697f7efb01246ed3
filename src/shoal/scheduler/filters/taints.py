"""Taints and tolerations (NoSchedule and NoExecute; PreferNoSchedule never filters).

The reason names the first taint the pod does not tolerate, exactly as kube-scheduler's
TaintToleration plugin prints it: "node(s) had untolerated taint {dedicated: gpu}".
"""

from __future__ import annotations

from typing import Any, Final

from shoal.scheduler.filters.base import Filter
from shoal.scheduler.podinfo import PodInfo
from shoal.scheduler.snapshot import NodeInfo, Taint

ERR_TAINT: Final = "node(s) had untolerated taint"


def tolerates(toleration: dict[str, Any], taint: Taint) -> bool:
    """core/v1 Toleration.ToleratesTaint: an empty effect matches every effect, an empty key
    with Exists matches every key, Equal (the default operator) also compares values."""
    key, value, effect = taint
    wanted_effect = toleration.get("effect") or ""
    if wanted_effect and wanted_effect != effect:
        return False
    wanted_key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if wanted_key != key and not (wanted_key == "" and operator == "Exists"):
        return False
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == value


def first_untolerated(pod: PodInfo, node: NodeInfo) -> Taint | None:
    tolerations = pod.spec.get("tolerations") or []
    for taint in node.taints:
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


class TaintToleration(Filter):
    name = "TaintToleration"
    reason = ERR_TAINT

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        return not node.taints or first_untolerated(pod, node) is None

    def reason_for(self, pod: PodInfo, node: NodeInfo) -> str:
        taint = first_untolerated(pod, node)
        if taint is None:
            return self.reason
        return f"{self.reason} {{{taint[0]}: {taint[1]}}}"
