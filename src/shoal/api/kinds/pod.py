"""Pod (core/v1): one or more containers scheduled together onto a node.

Defaults: the pod spec defaults of ``podspec.py`` (restartPolicy Always, dnsPolicy
ClusterFirst, terminationGracePeriodSeconds 30, schedulerName default-scheduler,
securityContext {}, container imagePullPolicy / terminationMessagePath /
terminationMessagePolicy, port protocol TCP, probe timings) plus the Pod-only ones
(enableServiceLinks true, hostNetwork hostPorts, requests from limits). A pod created without
a status starts ``Pending`` with its QoS class computed, as the API server does on create.

Updates may change only container images, activeDeadlineSeconds (lower), tolerations
(additions) and a negative terminationGracePeriodSeconds (to 1); everything else in the
spec is fixed once the pod exists. The node is set through the binding subresource.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from shoal.api.errors import FieldError, forbidden, invalid
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import AGE, NAME, dig, human_duration, parse_time
from shoal.api.kinds.meta import top_level
from shoal.api.kinds.podspec import POD_SPEC, default_pod_only, default_pod_spec
from shoal.api.kinds.podstatus import POD_STATUS, qos_class
from shoal.api.kinds.podvalidation import validate_pod_spec, validate_tolerations

_UPDATE_DETAIL = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def default(obj: Object) -> None:
    spec = obj.setdefault("spec", {})
    default_pod_spec(spec)
    default_pod_only(spec)
    if "status" not in obj:
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


def validate(obj: Object) -> list[FieldError]:
    return validate_pod_spec(obj.get("spec") or {}, "spec", is_pod=True)


def validate_update(new: Object, old: Object) -> list[FieldError]:
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    errors: list[FieldError] = []
    old_deadline, new_deadline = old_spec.get("activeDeadlineSeconds"), new_spec.get("activeDeadlineSeconds")
    if old_deadline is not None:
        if new_deadline is None:
            errors.append(
                invalid(
                    "spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value"
                )
            )
        elif new_deadline > old_deadline:
            errors.append(
                invalid(
                    "spec.activeDeadlineSeconds", new_deadline, "must be less than or equal to previous value"
                )
            )
    errors += _only_added_tolerations(new_spec.get("tolerations") or [], old_spec.get("tolerations") or [])

    # Put back into a copy of the new spec what may change, then compare with the old one.
    munged = copy.deepcopy(new_spec)
    for field in ("containers", "initContainers"):
        new_list, old_list = munged.get(field) or [], old_spec.get(field) or []
        if len(new_list) == len(old_list):
            for new_c, old_c in zip(new_list, old_list, strict=True):
                new_c.pop("image", None)
                if "image" in old_c:
                    new_c["image"] = old_c["image"]
    for field in ("activeDeadlineSeconds", "tolerations"):
        munged.pop(field, None)
        if field in old_spec:
            munged[field] = old_spec[field]
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if old_grace is not None and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if munged != old_spec:
        changed = sorted(k for k in {*munged, *old_spec} if munged.get(k) != old_spec.get(k))
        errors.append(
            forbidden("spec", _UPDATE_DETAIL + "\n  changed: " + ", ".join(f"spec.{k}" for k in changed))
        )
    return errors


def _only_added_tolerations(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[FieldError]:
    def without_seconds(t: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in t.items() if k != "tolerationSeconds"}

    remaining = [without_seconds(t) for t in new]
    for tol in old:
        if without_seconds(tol) not in remaining:
            detail = "existing toleration can not be modified except its tolerationSeconds"
            return [forbidden("spec.tolerations", detail)]
    return validate_tolerations(new, "spec.tolerations")


# --- table columns (kubectl's pod printer) ---


def summary(pod: Object) -> tuple[int, int, str, int, str]:
    """(ready containers, total containers, STATUS reason, restarts, last restart time) as
    ``kubectl get pods`` computes them."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(
        1 for c in init_specs.values() if c.get("restartPolicy") == "Always"
    )
    reason = status.get("reason") or status.get("phase") or ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    ready = restarts = 0
    last_restart = ""
    init_statuses = status.get("initContainerStatuses") or []
    initializing = False
    for i, cs in enumerate(init_statuses):
        restarts += cs.get("restartCount", 0)
        last_restart = max(last_restart, dig(cs, "lastState", "terminated", "finishedAt", default=""))
        if dig(init_specs, cs.get("name"), "restartPolicy") == "Always" and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        state = cs.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and terminated.get("exitCode") == 0:
            continue
        if terminated:
            reason = "Init:" + _terminated_reason(terminated)
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    if not initializing or initialized:
        restarts, has_running = 0, False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0)
            last_restart = max(last_restart, dig(cs, "lastState", "terminated", "finishedAt", default=""))
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting") or {}, state.get("terminated")
            if waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                reason = _terminated_reason(terminated)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
            )
            reason = "Running" if pod_ready else "NotReady"
    deleting = bool(dig(pod, "metadata", "deletionTimestamp"))
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return ready, total, reason, restarts, last_restart


def _terminated_reason(terminated: dict[str, Any]) -> str:
    if terminated.get("reason"):
        return str(terminated["reason"])
    if terminated.get("signal"):
        return f"Signal:{terminated['signal']}"
    return f"ExitCode:{terminated.get('exitCode', 0)}"


def _ready(pod: Object) -> str:
    ready, total, *_ = summary(pod)
    return f"{ready}/{total}"


def _restarts(pod: Object) -> str:
    _, _, _, restarts, last = summary(pod)
    if restarts and last:
        ago = human_duration((datetime.now(UTC) - parse_time(last)).total_seconds())
        return f"{restarts} ({ago} ago)"
    return str(restarts)


def _readiness_gates(pod: Object) -> str:
    gates = dig(pod, "spec", "readinessGates", default=[])
    if not gates:
        return "<none>"
    true = {c.get("type") for c in dig(pod, "status", "conditions", default=[]) if c.get("status") == "True"}
    return f"{sum(1 for g in gates if g.get('conditionType') in true)}/{len(gates)}"


POD = Kind(
    bindable=True,
    group="",
    version="v1",
    kind="Pod",
    plural="pods",
    singular="pod",
    namespaced=True,
    short_names=("po",),
    categories=("all",),
    schema=top_level("io.k8s.api.core.v1.Pod", spec=POD_SPEC, status=POD_STATUS),
    columns=(
        NAME,
        Column("Ready", _ready),
        Column("Status", lambda o: summary(o)[2]),
        Column("Restarts", _restarts),
        AGE,
        Column("IP", lambda o: dig(o, "status", "podIP") or "<none>", priority=1),
        Column("Node", lambda o: dig(o, "spec", "nodeName") or "<none>", priority=1),
        Column("Nominated Node", lambda o: dig(o, "status", "nominatedNodeName") or "<none>", priority=1),
        Column("Readiness Gates", _readiness_gates, priority=1),
    ),
    default=default,
    validate=validate,
    validate_update=validate_update,
    field_selectors={
        "spec.nodeName": lambda o: str(dig(o, "spec", "nodeName", default="")),
        "spec.restartPolicy": lambda o: str(dig(o, "spec", "restartPolicy", default="")),
        "spec.schedulerName": lambda o: str(dig(o, "spec", "schedulerName", default="")),
        "spec.serviceAccountName": lambda o: str(dig(o, "spec", "serviceAccountName", default="")),
        "spec.hostNetwork": lambda o: "true" if dig(o, "spec", "hostNetwork") else "false",
        "status.phase": lambda o: str(dig(o, "status", "phase", default="")),
        "status.podIP": lambda o: str(dig(o, "status", "podIP", default="")),
        "status.nominatedNodeName": lambda o: str(dig(o, "status", "nominatedNodeName", default="")),
    },
)
