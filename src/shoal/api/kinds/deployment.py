"""Deployment (apps/v1): a replicated, rolling-updated set of pods, managed through
ReplicaSets. Swarm's "replicated service" is a Deployment (plus a Service).

Defaults (SetDefaults_Deployment): ``replicas`` 1; ``strategy.type`` RollingUpdate with
``rollingUpdate.maxUnavailable`` 25% and ``maxSurge`` 25% (only for RollingUpdate);
``revisionHistoryLimit`` 10; ``progressDeadlineSeconds`` 600; and the pod spec defaults in
the template (see ``podspec.py``).

``spec.selector`` is immutable. The ``strategy`` object uses the ``retainKeys`` patch
strategy upstream, which our schema language cannot express yet: a strategic merge patch
switching ``type`` to Recreate must also clear ``rollingUpdate`` explicitly.
"""

from __future__ import annotations

from shoal.api.errors import FieldError, forbidden, invalid, required, unsupported
from shoal.api.kind import Column, Kind, Object, Scale
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
from shoal.api.schema import Arr, Bool, Int, IntOrStr, Obj, Str
from shoal.api.validation import immutable, non_negative

STRATEGY = Obj(
    "io.k8s.api.apps.v1.DeploymentStrategy",
    {
        "rollingUpdate": Obj(
            "io.k8s.api.apps.v1.RollingUpdateDeployment",
            {"maxSurge": IntOrStr(), "maxUnavailable": IntOrStr()},
        ),
        "type": Str(),
    },
)

DEPLOYMENT_SPEC = Obj(
    "io.k8s.api.apps.v1.DeploymentSpec",
    {
        "minReadySeconds": Int(),
        "paused": Bool(),
        "progressDeadlineSeconds": Int(),
        "replicas": Int(),
        "revisionHistoryLimit": Int(),
        "selector": LABEL_SELECTOR,
        "strategy": STRATEGY,
        "template": POD_TEMPLATE_SPEC,
    },
    required=("selector", "template"),
)

DEPLOYMENT_CONDITION = Obj(
    "io.k8s.api.apps.v1.DeploymentCondition",
    {
        "lastTransitionTime": TIME,
        "lastUpdateTime": TIME,
        "message": Str(),
        "reason": Str(),
        "status": Str(),
        "type": Str(),
    },
    required=("type", "status"),
)

DEPLOYMENT_STATUS = Obj(
    "io.k8s.api.apps.v1.DeploymentStatus",
    {
        "availableReplicas": Int(),
        "collisionCount": Int(),
        "conditions": Arr(DEPLOYMENT_CONDITION, merge_key="type", strategy="merge", map_keys=("type",)),
        "observedGeneration": Int(format="int64"),
        "readyReplicas": Int(),
        "replicas": Int(),
        "terminatingReplicas": Int(),
        "unavailableReplicas": Int(),
        "updatedReplicas": Int(),
    },
)


def default(obj: Object) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    default_pod_template(spec.setdefault("template", {}))


def validate(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = non_negative("spec.replicas", spec.get("replicas"))
    errors += validate_selector(spec, "spec", "deployment")
    # Kubernetes checks a Deployment's template with the ReplicaSet rules, wording included.
    errors += validate_replicated_template(spec, "spec", "ReplicaSet")
    errors += _strategy(spec.get("strategy") or {}, "spec.strategy")
    errors += non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    errors += non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        errors += non_negative("spec.progressDeadlineSeconds", deadline)
        if deadline <= spec.get("minReadySeconds", 0):
            errors.append(
                invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")
            )
    return errors


def _strategy(strategy: dict[str, object], path: str) -> list[FieldError]:
    kind = strategy.get("type", "")
    if kind == "Recreate":
        if "rollingUpdate" in strategy:
            detail = "may not be specified when strategy `type` is 'Recreate'"
            return [forbidden(f"{path}.rollingUpdate", detail)]
        return []
    if kind != "RollingUpdate":
        return [unsupported(f"{path}.type", kind, ["Recreate", "RollingUpdate"])]
    rolling = strategy.get("rollingUpdate")
    if not isinstance(rolling, dict):
        return [required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")]
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errors = validate_int_or_percent(f"{path}.rollingUpdate.maxUnavailable", unavailable)
    errors += validate_int_or_percent(f"{path}.rollingUpdate.maxSurge", surge)
    if int_or_percent_value(unavailable) == 0 and int_or_percent_value(surge) == 0:
        # Both zero would leave a rollout unable to make progress.
        errors.append(
            invalid(f"{path}.rollingUpdate.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0")
        )
    errors += not_more_than_100_percent(f"{path}.rollingUpdate.maxUnavailable", unavailable)
    return errors


def validate_update(new: Object, old: Object) -> list[FieldError]:
    return immutable("spec.selector", dig(new, "spec", "selector"), dig(old, "spec", "selector"))


DEPLOYMENT = Kind(
    group="apps",
    version="v1",
    kind="Deployment",
    plural="deployments",
    singular="deployment",
    namespaced=True,
    short_names=("deploy",),
    categories=("all",),
    schema=top_level("io.k8s.api.apps.v1.Deployment", spec=DEPLOYMENT_SPEC, status=DEPLOYMENT_STATUS),
    scale=Scale(),
    columns=(
        NAME,
        Column(
            "Ready",
            lambda o: (
                f"{dig(o, 'status', 'readyReplicas', default=0)}/{dig(o, 'spec', 'replicas', default=0)}"
            ),
        ),
        Column("Up-to-date", lambda o: dig(o, "status", "updatedReplicas", default=0), type="integer"),
        Column("Available", lambda o: dig(o, "status", "availableReplicas", default=0), type="integer"),
        AGE,
        *wide_columns(),
    ),
    default=default,
    validate=validate,
    validate_update=validate_update,
)
