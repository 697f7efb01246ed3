"""What the scheduler reads from a Pod, parsed once: requests, host ports, owner, class key.

Pods arrive as plain JSON dicts. The batch loop looks at the same few fields of every pod
of a class many times, so they are read once here; the fields only filters need (tolerations,
affinity, Swarm annotations) are parsed lazily, and only for the pod that represents its
equivalence class.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import orjson

from shoal.api.quantity import try_parse
from shoal.scheduler.swarm import Constraint, SwarmSyntaxError, parse_constraints, parse_preferences

Object = dict[str, Any]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
TEMPLATE_HASH_LABEL = "pod-template-hash"
CONSTRAINTS_ANNOTATION = "shoal.io/constraints"
PREFERENCES_ANNOTATION = "shoal.io/placement-preferences"
MAX_REPLICAS_ANNOTATION = "shoal.io/max-replicas-per-node"

# (protocol, hostIP, hostPort); hostIP "" means every address, as 0.0.0.0 does.
HostPort = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class Requests:
    """What a pod asks of a node: cpu in millicores, memory in bytes (rounded up, so a
    request never fits where its exact value would not)."""

    cpu: int = 0
    memory: int = 0


@lru_cache(maxsize=4096)
def _milli(value: str | int | float) -> int:
    # Requests repeat across thousands of pods; the Fraction arithmetic is worth caching.
    parsed = try_parse(value)
    return math.ceil(parsed * 1000) if parsed is not None and parsed > 0 else 0


@lru_cache(maxsize=4096)
def _units(value: str | int | float) -> int:
    parsed = try_parse(value)
    return math.ceil(parsed) if parsed is not None and parsed > 0 else 0


def cpu_milli(value: object) -> int:
    return _milli(value) if isinstance(value, str | int | float) else 0


def quantity(value: object) -> int:
    return _units(value) if isinstance(value, str | int | float) else 0


def _container_requests(container: Object) -> tuple[int, int]:
    requests = (container.get("resources") or {}).get("requests") or {}
    return cpu_milli(requests.get("cpu")), quantity(requests.get("memory"))


def pod_requests(spec: Object) -> Requests:
    """Kubernetes' effective request: the larger of the app containers' sum and the largest
    init container (init containers run one at a time, before the app), plus overhead."""
    pod_level = (spec.get("resources") or {}).get("requests")
    if pod_level:
        # Pod-level resources, when given, replace the containers' sum (KEP 2837).
        overhead = spec.get("overhead") or {}
        return Requests(
            cpu_milli(pod_level.get("cpu")) + cpu_milli(overhead.get("cpu")),
            quantity(pod_level.get("memory")) + quantity(overhead.get("memory")),
        )
    cpu = memory = 0
    for container in spec.get("containers") or []:
        c, m = _container_requests(container)
        cpu, memory = cpu + c, memory + m
    for container in spec.get("initContainers") or []:
        c, m = _container_requests(container)
        cpu, memory = max(cpu, c), max(memory, m)
    overhead = spec.get("overhead") or {}
    cpu += cpu_milli(overhead.get("cpu"))
    memory += quantity(overhead.get("memory"))
    return Requests(cpu, memory)


def pod_host_ports(spec: Object) -> tuple[HostPort, ...]:
    ports: list[HostPort] = []
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            host_port = port.get("hostPort")
            if host_port:
                ip = port.get("hostIP") or ""
                ports.append((port.get("protocol") or "TCP", "" if ip == "0.0.0.0" else ip, int(host_port)))
    return tuple(ports)


def controller_uid(meta: Object) -> str:
    """The uid of the controlling owner: the replicas spread is counted per controller."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid") or "")
    return ""


def is_terminal(pod: Object) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def _lines(text: str) -> list[str]:
    """A Swarm annotation: a JSON list of strings, or one expression per line."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = orjson.loads(stripped)
        except orjson.JSONDecodeError as e:
            raise SwarmSyntaxError(stripped, f"not a JSON list of strings: {e}") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise SwarmSyntaxError(stripped, "not a JSON list of strings")
        return [i.strip() for i in items if i.strip()]
    return [line.strip() for line in stripped.splitlines() if line.strip()]


class PodInfo:
    """One pod as the scheduler sees it. Never modifies the pod object it wraps."""

    def __init__(self, obj: Object) -> None:
        meta = obj.get("metadata") or {}
        self.obj = obj
        self.namespace: str = meta.get("namespace") or "default"
        self.name: str = meta.get("name") or ""
        self.key = f"{self.namespace}/{self.name}"
        # The uid seeds tie-breaking, so a placement can be replayed from the pod alone.
        self.uid: str = meta.get("uid") or self.key
        self.owner = controller_uid(meta)
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.annotations: dict[str, str] = meta.get("annotations") or {}
        self.spec: Object = obj.get("spec") or {}

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"

    @cached_property
    def requests(self) -> Requests:
        return pod_requests(self.spec)

    @cached_property
    def host_ports(self) -> tuple[HostPort, ...]:
        return pod_host_ports(self.spec)

    @cached_property
    def class_key(self) -> str:
        """Pods with equal keys are interchangeable to every filter and score.

        A controller's pods share an owner and a ``pod-template-hash`` label; other pods
        are hashed on their spec and the annotations the scheduler reads."""
        template_hash = self.labels.get(TEMPLATE_HASH_LABEL)
        if template_hash and self.owner:
            return f"{self.owner}/{template_hash}"
        relevant = {
            "spec": {k: v for k, v in self.spec.items() if k != "nodeName"},
            "constraints": self.annotations.get(CONSTRAINTS_ANNOTATION),
            "preferences": self.annotations.get(PREFERENCES_ANNOTATION),
            "max_replicas": self.annotations.get(MAX_REPLICAS_ANNOTATION),
        }
        digest = hashlib.blake2b(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS), digest_size=12)
        return f"{self.owner}/{digest.hexdigest()}"

    @cached_property
    def _swarm(self) -> tuple[tuple[Constraint, ...], tuple[str, ...], str]:
        try:
            constraints = parse_constraints(_lines(self.annotations.get(CONSTRAINTS_ANNOTATION) or ""))
        except SwarmSyntaxError as e:
            return (), (), f"pod has an invalid {CONSTRAINTS_ANNOTATION} annotation: {e}"
        try:
            preferences = parse_preferences(_lines(self.annotations.get(PREFERENCES_ANNOTATION) or ""))
        except SwarmSyntaxError as e:
            return (), (), f"pod has an invalid {PREFERENCES_ANNOTATION} annotation: {e}"
        return constraints, preferences, ""

    @cached_property
    def _max_replicas(self) -> tuple[int, str]:
        text = self.annotations.get(MAX_REPLICAS_ANNOTATION)
        if text is None:
            return 0, ""
        try:
            limit = int(text)
        except ValueError:
            limit = 0
        if limit < 1:
            return (
                0,
                f"pod has an invalid {MAX_REPLICAS_ANNOTATION} annotation: {text!r} is not an integer ≥ 1",
            )
        return limit, ""

    @property
    def max_replicas_per_node(self) -> int:
        """Swarm's ``--replicas-max-per-node``: 0 for no limit."""
        return self._max_replicas[0]

    @property
    def constraints(self) -> tuple[Constraint, ...]:
        return self._swarm[0]

    @property
    def spread_labels(self) -> tuple[str, ...]:
        """The node labels of the pod's placement preferences, most significant first."""
        return self._swarm[1]

    @property
    def problem(self) -> str:
        """Why no node can ever take this pod whatever the cluster, or "" (a malformed
        annotation: telling the user beats counting every node as a mismatch)."""
        return self._swarm[2] or self._max_replicas[1]
