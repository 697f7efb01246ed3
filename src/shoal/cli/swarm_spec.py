"""Docker Swarm's words in Kubernetes' objects: ``service create`` options as a Deployment or
a DaemonSet, and pods, nodes and services as the rows ``service ps`` and ``node ls`` print.

Everything here is pure (no client): the options are checked in full before anything is
sent, so that wrong input creates nothing.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import click

from shoal.api import Object
from shoal.api.quantity import parse_quantity
from shoal.scheduler.swarm import SwarmSyntaxError, parse_constraint, parse_preferences

SERVICE_LABEL: Final = "shoal.io/service"
CONSTRAINTS_ANNOTATION: Final = "shoal.io/constraints"
PREFERENCES_ANNOTATION: Final = "shoal.io/placement-preferences"
AVAILABILITY_ANNOTATION: Final = "shoal.io/availability"
AVAILABILITIES: Final = ("active", "pause", "drain")
COMMAND_IMAGE: Final = "none"  # a --command service has no image; the exec runtime needs none
MANAGER_LABELS: Final = ("node-role.kubernetes.io/manager", "node-role.kubernetes.io/control-plane")


@dataclass
class ServiceSpec:
    """What ``service create`` was asked for, as given on the command line."""

    name: str
    image: str | None
    command: str | None
    args: list[str]
    replicas: int | None
    mode: str
    constraints: list[str] = field(default_factory=list)
    preferences: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    limits: dict[str, str | None] = field(default_factory=dict)
    reservations: dict[str, str | None] = field(default_factory=dict)


def key_values(pairs: list[str], option: str) -> dict[str, str]:
    """``K=V`` arguments as a dict; a pair without ``=`` or with an empty key is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"{option} {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def _quantity(value: str, option: str) -> str:
    try:
        if parse_quantity(value) < 0:
            raise ValueError(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected a quantity such as 256Mi, 1G or 0.5", param_hint=option
        ) from None
    return value.strip()


def _resources(values: dict[str, str | None], kind: str) -> dict[str, str]:
    return {
        resource: _quantity(value, f"--{kind}-{resource}")
        for resource, value in values.items()
        if value is not None
    }


def build_service(spec: ServiceSpec) -> Object:
    """The Deployment (replicated) or DaemonSet (global) for a service; raises click errors
    (one line each) for wrong input."""
    if (spec.image is None) == (spec.command is None):
        raise click.UsageError("give exactly one of --image IMG or --command CMD")
    if spec.mode == "global" and spec.replicas is not None:
        raise click.UsageError("--replicas applies to replicated services, not --mode global")
    if spec.replicas is not None and spec.replicas < 0:
        raise click.BadParameter(f"{spec.replicas}: must be 0 or more", param_hint="--replicas")
    try:
        for text in spec.constraints:
            parse_constraint(text)
        parse_preferences(spec.preferences)
    except SwarmSyntaxError as err:
        raise click.BadParameter(str(err), param_hint="--constraint/--placement-pref") from None
    env = key_values(spec.env, "--env")
    labels = key_values(spec.labels, "--label")
    container: dict[str, Any] = {"name": spec.name, "image": spec.image or COMMAND_IMAGE}
    if spec.command is not None:
        try:
            command = shlex.split(spec.command)
        except ValueError as err:
            raise click.BadParameter(f"{spec.command!r}: {err}", param_hint="--command") from None
        if not command:
            raise click.BadParameter("empty command", param_hint="--command")
        container["command"] = command
    if spec.args:
        container["args"] = list(spec.args)
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    limits, requests = _resources(spec.limits, "limit"), _resources(spec.reservations, "reserve")
    if limits or requests:
        container["resources"] = {
            **({"limits": limits} if limits else {}),
            **({"requests": requests} if requests else {}),
        }
    selector = {SERVICE_LABEL: spec.name}
    annotations: dict[str, str] = {}
    if spec.constraints:
        annotations[CONSTRAINTS_ANNOTATION] = json.dumps(spec.constraints)
    if spec.preferences:
        annotations[PREFERENCES_ANNOTATION] = json.dumps(spec.preferences)
    template_meta: dict[str, Any] = {"labels": {**selector, "app": spec.name}}
    if annotations:
        template_meta["annotations"] = annotations
    body: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "template": {"metadata": template_meta, "spec": {"containers": [container]}},
    }
    global_mode = spec.mode == "global"
    if not global_mode:
        body = {"replicas": 1 if spec.replicas is None else spec.replicas, **body}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet" if global_mode else "Deployment",
        "metadata": {"name": spec.name, "labels": {**labels, **selector}},
        "spec": body,
    }


# -- reading objects back ------------------------------------------------------------------


def match_labels_selector(workload: Object) -> str:
    """The workload's ``spec.selector.matchLabels`` as a label selector string."""
    labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _waiting_reason(pod: Object) -> str:
    """Why a container of a Running pod is not running (as CrashLoopBackOff), else ""."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "running" not in state:
            return str((state.get("waiting") or {}).get("reason") or "Starting")
    return ""


def is_running(pod: Object) -> bool:
    """Running as docker counts tasks: phase Running, not terminating, and no container
    waiting to be restarted."""
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    phase = (pod.get("status") or {}).get("phase")
    return not terminating and phase == "Running" and not _waiting_reason(pod)


def service_mode(workload: Object) -> str:
    return "global" if workload.get("kind") == "DaemonSet" else "replicated"


def desired_replicas(workload: Object, ready_nodes: int) -> int:
    """Replicas asked for; for a global service, the DaemonSet's count once it has one."""
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    if service_mode(workload) == "replicated":
        return int(spec.get("replicas", 1))
    return int(status.get("desiredNumberScheduled") or ready_nodes)


def image_or_command(workload: Object) -> str:
    containers = (((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    if not containers:
        return ""
    first = containers[0]
    if first.get("command"):
        return shlex.join([*first["command"], *(first.get("args") or [])])
    return str(first.get("image") or "")


def ago(timestamp: str | None, now: datetime | None = None) -> str:
    """``5 seconds ago``, as docker prints a task's state age."""
    if not timestamp:
        return ""
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "Less than a second ago" if seconds < 1 else f"{seconds} second{'s' if seconds != 1 else ''} ago"


def task_row(pod: Object, now: datetime | None = None) -> list[str]:
    """NAME NODE DESIRED STATE CURRENT STATE ERROR for one pod, as ``docker service ps``."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    terminating = bool(meta.get("deletionTimestamp"))
    phase = str(status.get("phase") or "Pending")
    desired = "Shutdown" if terminating or phase in ("Succeeded", "Failed") else "Running"
    since = status.get("startTime") if phase == "Running" else meta.get("creationTimestamp")
    current = "Shutting down" if terminating else (phase == "Running" and _waiting_reason(pod)) or phase
    age = ago(since, now)
    error = ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            error = str(cond.get("message") or cond.get("reason") or "")
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
        last_code = ((cs.get("lastState") or {}).get("terminated") or {}).get("exitCode")
        if error:
            break
        if waiting.get("reason") == "CrashLoopBackOff" and last_code:
            error = f"non-zero exit ({last_code})"
        elif waiting or terminated.get("exitCode"):
            detail = waiting or terminated
            error = ": ".join(str(p) for p in (detail.get("reason"), detail.get("message")) if p)
    return [
        str(meta.get("name", "")),
        str(spec.get("nodeName") or ""),
        desired,
        f"{current} {age}".strip(),
        " ".join(error.split()),
    ]


def node_status(node: Object) -> str:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return {"True": "Ready", "False": "Down"}.get(str(cond.get("status")), "Unknown")
    return "Unknown"


def availability(node: Object) -> str:
    meta = node.get("metadata") or {}
    found = (meta.get("annotations") or {}).get(AVAILABILITY_ANNOTATION) or (meta.get("labels") or {}).get(
        AVAILABILITY_ANNOTATION
    )
    return str(found or "active")


def is_manager(node: Object) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return any(key in labels for key in MANAGER_LABELS) or labels.get("shoal.io/role") == "manager"


def manager_status(node: Object, managers: int, holder: str) -> str:
    """``Leader`` for the manager that holds the controllers' Lease (or the only manager),
    ``Reachable`` for other managers, blank for workers."""
    if not is_manager(node):
        return ""
    name = str((node.get("metadata") or {}).get("name", ""))
    if managers == 1 or (holder and holder.startswith(name)):
        return "Leader"
    return "Reachable"
