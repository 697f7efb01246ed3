"""DaemonSet (apps/v1): one pod on every (selected) node. Swarm's "global service".

Defaults (SetDefaults_DaemonSet): ``updateStrategy.type`` RollingUpdate with
``rollingUpdate.maxUnavailable`` 1 and ``maxSurge`` 0 (only for RollingUpdate);
``revisionHistoryLimit`` 10; and the pod spec defaults in the template.
``spec.selector`` is immutable.
"""

from __future__ import annotations

from typing import Any

from shoal.api.errors import FieldError, invalid, required, unsupported
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import AGE, NAME, dig
from shoal.api.kinds.meta import LABEL_SELECTOR, TIME, top_level
from shoal.api.kinds.podspec import POD_TEMPLATE_SPEC, default_pod_template
from shoal.api.kinds.workload import (
    int_or_percent_value,
    not_more_than_100_percent,
    validate_int_or_percent,
    validate_replicated_template,
    validate_selector,
    wide_columns,
)
from shoal.api.schema import Arr, Int, IntOrStr, Obj, Str
from shoal.api.validation import immutable, non_negative

UPDATE_STRATEGY = Obj(
    "io.k8s.api.apps.v1.DaemonSetUpdateStrategy",
    {
        "rollingUpdate": Obj(
            "io.k8s.api.apps.v1.RollingUpdateDaemonSet",
            {"maxSurge": IntOrStr(), "maxUnavailable": IntOrStr()},
        ),
        "type": Str(),
    },
)

DAEMON_SET_SPEC = Obj(
    "io.k8s.api.apps.v1.DaemonSetSpec",
    {
        "minReadySeconds": Int(),
        "revisionHistoryLimit": Int(),
        "selector": LABEL_SELECTOR,
        "template": POD_TEMPLATE_SPEC,
        "updateStrategy": UPDATE_STRATEGY,
    },
    required=("selector", "template"),
)

DAEMON_SET_CONDITION = Obj(
    "io.k8s.api.apps.v1.DaemonSetCondition",
    {"lastTransitionTime": TIME, "message": Str(), "reason": Str(), "status": Str(), "type": Str()},
    required=("type", "status"),
)

DAEMON_SET_STATUS = Obj(
    "io.k8s.api.apps.v1.DaemonSetStatus",
    {
        "collisionCount": Int(),
        "conditions": Arr(DAEMON_SET_CONDITION, merge_key="type", strategy="merge", map_keys=("type",)),
        "currentNumberScheduled": Int(),
        "desiredNumberScheduled": Int(),
        "numberAvailable": Int(),
        "numberMisscheduled": Int(),
        "numberReady": Int(),
        "numberUnavailable": Int(),
        "observedGeneration": Int(format="int64"),
        "updatedNumberScheduled": Int(),
    },
    required=("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"),
)


def default(obj: Object) -> None:
    spec = obj.setdefault("spec", {})
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    default_pod_template(spec.setdefault("template", {}))


def validate(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = validate_selector(spec, "spec", "daemonset")
    errors += validate_replicated_template(spec, "spec", "DaemonSet")
    errors += non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    errors += _update_strategy(spec.get("updateStrategy") or {}, "spec.updateStrategy")
    errors += non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    return errors


def _update_strategy(strategy: dict[str, Any], path: str) -> list[FieldError]:
    kind = strategy.get("type", "")
    if kind == "OnDelete":
        return []
    if kind != "RollingUpdate":
        return [unsupported(path, strategy, ["RollingUpdate", "OnDelete"])]
    rolling = strategy.get("rollingUpdate")
    if rolling is None:
        return [required(f"{path}.rollingUpdate")]
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errors = validate_int_or_percent(f"{path}.rollingUpdate.maxUnavailable", unavailable)
    errors += validate_int_or_percent(f"{path}.rollingUpdate.maxSurge", surge)
    errors += not_more_than_100_percent(f"{path}.rollingUpdate.maxUnavailable", unavailable)
    errors += not_more_than_100_percent(f"{path}.rollingUpdate.maxSurge", surge)
    # A node's old and new pod either overlap (surge) or leave a gap (unavailable): one of
    # the two, never both, never neither.
    has_unavailable, has_surge = int_or_percent_value(unavailable) != 0, int_or_percent_value(surge) != 0
    if has_unavailable and has_surge:
        errors.append(
            invalid(f"{path}.rollingUpdate.maxSurge", surge, "may not be set when maxUnavailable is non-zero")
        )
    elif not has_unavailable and not has_surge:
        errors.append(required(f"{path}.rollingUpdate.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errors


def validate_update(new: Object, old: Object) -> list[FieldError]:
    return immutable("spec.selector", dig(new, "spec", "selector"), dig(old, "spec", "selector"))


def _node_selector(obj: Object) -> str:
    selector = dig(obj, "spec", "template", "spec", "nodeSelector", default={})
    return ",".join(f"{k}={selector[k]}" for k in sorted(selector)) or "<none>"


DAEMON_SET = Kind(
    group="apps",
    version="v1",
    kind="DaemonSet",
    plural="daemonsets",
    singular="daemonset",
    namespaced=True,
    short_names=("ds",),
    categories=("all",),
    schema=top_level("io.k8s.api.apps.v1.DaemonSet", spec=DAEMON_SET_SPEC, status=DAEMON_SET_STATUS),
    columns=(
        NAME,
        Column("Desired", lambda o: dig(o, "status", "desiredNumberScheduled", default=0), type="integer"),
        Column("Current", lambda o: dig(o, "status", "currentNumberScheduled", default=0), type="integer"),
        Column("Ready", lambda o: dig(o, "status", "numberReady", default=0), type="integer"),
        Column("Up-to-date", lambda o: dig(o, "status", "updatedNumberScheduled", default=0), type="integer"),
        Column("Available", lambda o: dig(o, "status", "numberAvailable", default=0), type="integer"),
        Column("Node Selector", _node_selector),
        AGE,
        *wide_columns(),
    ),
    default=default,
    validate=validate,
    validate_update=validate_update,
)
