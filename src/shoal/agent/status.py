"""A pod's status from what the runtime reports: container states, phase and conditions,
following the kubelet's rules (``getPhase``, ``generateAPIPodStatus``).

Pure functions of their inputs, so pod sync can compare the result with what the API holds
and write only when something changed: a time in here moves only when the state it dates
moves (lastTransitionTime is kept from the previous status while a condition holds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shoal.agent.runtimes import ContainerState, ContainerStatus

TERMINAL_PHASES = ("Succeeded", "Failed")
OWNED_CONDITIONS = ("Initialized", "ContainersReady", "Ready")


@dataclass(frozen=True, slots=True)
class ContainerView:
    """One container of the pod spec as the agent sees it.

    ``current`` is its latest attempt in the runtime (None before the first is created),
    ``previous`` the attempt before (lastState); ``waiting`` a (reason, message) that replaces
    the state while no attempt runs: CrashLoopBackOff, CreateContainerConfigError.
    ``ready`` is the readiness verdict (probes; a running container without one is ready);
    ``started`` the startup verdict (false until a startup probe, if any, has passed).
    """

    name: str
    image: str
    restart_count: int = 0
    current: ContainerStatus | None = None
    previous: ContainerStatus | None = None
    waiting: tuple[str, str] | None = None
    ready: bool = False
    started: bool = False


def _state(status: ContainerStatus, runtime: str) -> dict[str, Any]:
    state = status.as_k8s_state()
    if "terminated" in state:
        state["terminated"]["containerID"] = f"{runtime}://{status.id}"
    return state


def container_status(view: ContainerView, runtime: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": view.name,
        "image": view.image,
        "imageID": "",  # none before a container exists (and never on the exec runtime)
        "ready": False,
        "restartCount": view.restart_count,
        "started": False,
        "state": {"waiting": {"reason": "ContainerCreating"}},
        "lastState": {},
    }
    current = view.current
    if current is not None:
        out["containerID"] = f"{runtime}://{current.id}"
        out["imageID"] = current.image_id or ""
        out["state"] = _state(current, runtime)
        running = current.state is ContainerState.RUNNING
        out["started"] = running and view.started
        out["ready"] = running and view.ready
    if view.previous is not None:
        out["lastState"] = _state(view.previous, runtime)
    if view.waiting is not None:
        reason, message = view.waiting
        if current is not None and current.state is ContainerState.EXITED:
            out["lastState"] = _state(current, runtime)  # the attempt that ended is now the last
        out["state"] = {"waiting": {"reason": reason, "message": message}}
    return out


def phase(restart_policy: str, statuses: Sequence[Mapping[str, Any]]) -> str:
    """The kubelet's getPhase for regular containers."""
    waiting = running = stopped = succeeded = 0
    for status in statuses:
        state, last = status["state"], status.get("lastState") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode") == 0
        elif "terminated" in last:
            stopped += 1  # waiting to restart after it ran: it counts as stopped
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(
    kind: str, ok: bool, old: Mapping[str, Mapping[str, Any]], now: str, reason: str = "", message: str = ""
) -> dict[str, Any]:
    status = "True" if ok else "False"
    previous = old.get(kind) or {}
    # The transition time moves only when the status does, so an unchanged pod compares equal.
    since = previous.get("lastTransitionTime") if previous.get("status") == status else None
    condition: dict[str, Any] = {"type": kind, "status": status, "lastTransitionTime": since or now}
    if not ok and reason:
        condition["reason"] = reason
        condition["message"] = message
    return condition


def conditions(
    old_conditions: Sequence[Mapping[str, Any]],
    statuses: Sequence[Mapping[str, Any]],
    pod_phase: str,
    now: str,
    initialized: bool = True,
) -> list[dict[str, Any]]:
    """Initialized, ContainersReady and Ready computed; PodScheduled and any other condition
    (owned by the scheduler, readiness gates) kept as they are, PodScheduled added if missing."""
    old = {c["type"]: c for c in old_conditions}
    unready = [s["name"] for s in statuses if not s["ready"]]
    if pod_phase in TERMINAL_PHASES:
        reason, message = "PodCompleted", ""
    else:
        reason, message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    ready = not unready and pod_phase not in TERMINAL_PHASES
    ours = [
        # Init containers are not run yet: a pod without them is initialized at once.
        _condition(
            "Initialized",
            initialized,
            old,
            now,
            "ContainersNotInitialized",
            "init containers are not supported yet",
        ),
        _condition("ContainersReady", ready, old, now, reason, message),
        _condition("Ready", ready, old, now, reason, message),
    ]
    if pod_phase in TERMINAL_PHASES:
        for condition in ours[1:]:
            condition.pop("message", None)
    kept = [dict(c) for c in old_conditions if c["type"] not in OWNED_CONDITIONS]
    if "PodScheduled" not in old:
        kept.insert(0, {"type": "PodScheduled", "status": "True", "lastTransitionTime": now})
    return kept + ours


def pod_status(
    pod: Mapping[str, Any],
    views: Sequence[ContainerView],
    *,
    runtime: str,
    host_ip: str,
    pod_ip: str,
    now: str,
    initialized: bool = True,
) -> dict[str, Any]:
    """The status fields the agent owns, ready to be sent as a merge patch."""
    old: Mapping[str, Any] = pod.get("status") or {}
    spec = pod.get("spec") or {}
    statuses = [container_status(view, runtime) for view in views]
    new_phase = phase(spec.get("restartPolicy", "Always"), statuses)
    if old.get("phase") in TERMINAL_PHASES:
        new_phase = old["phase"]  # a pod that finished never runs again
    return {
        "phase": new_phase,
        "conditions": conditions(old.get("conditions") or [], statuses, new_phase, now, initialized),
        "containerStatuses": statuses,
        "startTime": old.get("startTime") or now,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
    }


def changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` (a partial status) would change ``old``."""
    return any(old.get(key) != value for key, value in new.items())
