"""Pure helpers of the Deployment controller: template hashes, revisions, surge and
unavailability arithmetic, and the status a Deployment should report.

Kept apart from the controller so the arithmetic (where Kubernetes' rounding rules live) can
be read and tested without an API, and so ``deployment.py`` stays about control flow.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from shoal.api import Object

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"

Condition = dict[str, Any]

# Kubernetes' "safe" alphabet (no vowels, no look-alikes), so a hash never spells a word.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_HASH_LENGTH = 10


def template_hash(template: Object, collision_count: int | None = None) -> str:
    """A short, stable name for a pod template: the same template always hashes the same,
    whatever order its keys were written in. ``collision_count`` (status.collisionCount)
    is mixed in, as Kubernetes does, so a bumped count yields a fresh name."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        data += str(collision_count).encode()
    number = int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
    chars = []
    for _ in range(_HASH_LENGTH):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def without_hash(template: Object) -> Object:
    """The template as a Deployment declares it: a ReplicaSet's copy carries the hash label,
    which must not make it look different."""
    stripped = copy.deepcopy(template)
    labels = (stripped.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return stripped


def revision(obj: Object) -> int:
    value = (obj["metadata"].get("annotations") or {}).get(REVISION, "")
    try:
        return int(value)
    except ValueError:
        return 0


def spec_replicas(rs: Object) -> int:
    return int((rs.get("spec") or {}).get("replicas") or 0)


def status_count(rs: Object, field: str) -> int:
    return int((rs.get("status") or {}).get(field) or 0)


def total(rss: Iterable[Object], count: Callable[[Object], int]) -> int:
    return sum(count(rs) for rs in rss)


def oldest_first(rss: Iterable[Object]) -> list[Object]:
    """Old ReplicaSets in the order they are scaled down and deleted: lowest revision first,
    then by creation time and name so the order is total."""
    return sorted(
        rss,
        key=lambda rs: (revision(rs), rs["metadata"].get("creationTimestamp", ""), rs["metadata"]["name"]),
    )


def _scaled(value: int | str | None, replicas: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * replicas / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return 0


def is_rolling(deployment: Object) -> bool:
    return bool((deployment["spec"].get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate")


def fenceposts(deployment: Object) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods. Percentages scale by spec.replicas, surge rounding
    up and unavailability down (both err towards availability); if both come to 0 a
    rollout could never move, so one pod may be unavailable. Recreate has neither."""
    if not is_rolling(deployment):
        return 0, 0
    replicas = int(deployment["spec"].get("replicas", 1))
    rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def new_rs_replicas(deployment: Object, all_rss: list[Object], new_replicas: int) -> int:
    """How far the new ReplicaSet may grow now (k8s' NewRSNewReplicas): Recreate goes
    straight to spec.replicas; RollingUpdate stays within replicas + maxSurge pods in all."""
    replicas = int(deployment["spec"].get("replicas", 1))
    if not is_rolling(deployment):
        return replicas
    surge, _ = fenceposts(deployment)
    current = total(all_rss, spec_replicas)
    room = replicas + surge - current
    if room <= 0:
        return new_replicas
    return new_replicas + min(room, replicas - new_replicas)


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _condition(
    kind: str, status: str, reason: str, message: str, now: str, old: Condition | None
) -> Condition:
    """A fresh condition; lastTransitionTime survives while ``status`` stays the same."""
    transitioned = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": transitioned or now,
    }


def _same(old: Condition | None, status: str, reason: str, message: str) -> bool:
    return old is not None and (old.get("status"), old.get("reason"), old.get("message")) == (
        status,
        reason,
        message,
    )


def _made_progress(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """k8s' DeploymentProgressing: more updated, ready or available pods, or fewer old ones."""
    old_pods = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    return bool(
        new["updatedReplicas"] > old.get("updatedReplicas", 0)
        or new["replicas"] - new["updatedReplicas"] < old_pods
        or new["readyReplicas"] > old.get("readyReplicas", 0)
        or new["availableReplicas"] > old.get("availableReplicas", 0)
    )


def _available(deployment: Object, available: int, old: Condition | None, now: str) -> Condition:
    replicas = int(deployment["spec"].get("replicas", 1))
    _, max_unavailable = fenceposts(deployment)
    if available >= replicas - max_unavailable:
        args = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        args = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    if _same(old, *args):
        assert old is not None
        return dict(old)
    return _condition("Available", *args, now, old)


def _progressing(
    deployment: Object,
    new_rs: Object | None,
    status: dict[str, Any],
    old: Condition | None,
    now: datetime,
    event: str,
) -> Condition | None:
    """The Progressing condition as k8s' syncRolloutStatus and checkPausedConditions set it;
    ``None`` when the Deployment has no progress deadline to judge by (and no pause to tell).
    ``event`` is "created" when this reconcile created the new ReplicaSet. Timestamps move
    only on a change or on progress, so a steady Deployment keeps an identical status (and
    is not written)."""
    stamp = format_time(now)
    spec = deployment["spec"]
    name = f'"{new_rs["metadata"]["name"]}"' if new_rs else ""
    subject = f"ReplicaSet {name}" if new_rs else f'Deployment "{deployment["metadata"]["name"]}"'
    if spec.get("paused"):
        if old is not None and old.get("reason") == "DeploymentPaused":
            return dict(old)
        return _condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", stamp, old)
    deadline = spec.get("progressDeadlineSeconds")
    if event == "created" and deadline is not None:
        message = f"Created new replica set {name}"
        return _condition("Progressing", "True", "NewReplicaSetCreated", message, stamp, old)
    if old is not None and old.get("reason") == "DeploymentPaused":
        return _condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", stamp, old)
    if deadline is None:
        return old
    if old is None and new_rs is not None:
        return _condition(
            "Progressing", "True", "FoundNewReplicaSet", f"Found new replica set {name}", stamp, old
        )
    settled = (
        status["replicas"] == status["updatedReplicas"]
        and old
        and old.get("reason") == "NewReplicaSetAvailable"
    )
    if settled:
        return old  # a finished rollout stays finished while pods come and go
    if is_complete(deployment, status):
        message = f"{subject} has successfully progressed."
        if _same(old, "True", "NewReplicaSetAvailable", message):
            return old
        return _condition("Progressing", "True", "NewReplicaSetAvailable", message, stamp, old)
    previous = deployment.get("status") or {}
    if old is None or _made_progress(previous, status):
        return _condition(
            "Progressing", "True", "ReplicaSetUpdated", f"{subject} is progressing.", stamp, old
        )
    if old.get("reason") == "ProgressDeadlineExceeded":
        return old
    updated = old.get("lastUpdateTime")
    if updated and parse_time(updated) + timedelta(seconds=deadline) < now:
        message = f"{subject} has timed out progressing."
        return _condition("Progressing", "False", "ProgressDeadlineExceeded", message, stamp, old)
    return old


def deployment_status(
    deployment: Object, new_rs: Object | None, all_rss: list[Object], now: datetime, event: str = ""
) -> dict[str, Any]:
    """The status kubectl reads (``rollout status``, ``get``), from the ReplicaSets' own
    status as the ReplicaSet controller reports it."""
    available = total(all_rss, lambda rs: status_count(rs, "availableReplicas"))
    old_status = deployment.get("status") or {}
    status: dict[str, Any] = {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": total(all_rss, lambda rs: status_count(rs, "replicas")),
        "updatedReplicas": status_count(new_rs, "replicas") if new_rs else 0,
        "readyReplicas": total(all_rss, lambda rs: status_count(rs, "readyReplicas")),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total(all_rss, spec_replicas) - available),
    }
    if old_status.get("collisionCount") is not None:
        status["collisionCount"] = old_status["collisionCount"]
    previous: list[Condition] = list(old_status.get("conditions") or [])
    by_type = {c.get("type"): c for c in previous}
    conditions = [_available(deployment, available, by_type.get("Available"), format_time(now))]
    progressing = _progressing(deployment, new_rs, status, by_type.get("Progressing"), now, event)
    if progressing is not None:
        conditions.append(progressing)
    # Conditions other writers set (ReplicaFailure, say) are kept as they are.
    conditions += [c for c in previous if c.get("type") not in ("Available", "Progressing")]
    status["conditions"] = conditions
    return status


def is_complete(deployment: Object, status: dict[str, Any]) -> bool:
    """Every replica runs the current template and is available (k8s' DeploymentComplete)."""
    replicas = int(deployment["spec"].get("replicas", 1))
    return bool(
        status["updatedReplicas"] == replicas
        and status["replicas"] == replicas
        and status["availableReplicas"] == replicas
        and status["observedGeneration"] >= deployment["metadata"].get("generation", 1)
    )


def recheck_after(deployment: Object, status: dict[str, Any], now: datetime) -> float | None:
    """Seconds until a rollout that is still progressing would exceed its deadline: the
    controller looks again then, since no event would wake it (k8s' requeueStuckDeployment)."""
    deadline = deployment["spec"].get("progressDeadlineSeconds")
    if deadline is None or deployment["spec"].get("paused") or is_complete(deployment, status):
        return None
    cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None)
    if cond is None or cond.get("status") != "True" or not cond.get("lastUpdateTime"):
        return None
    due = parse_time(cond["lastUpdateTime"]) + timedelta(seconds=deadline)
    return max(0.0, (due - now).total_seconds()) + 1.0
