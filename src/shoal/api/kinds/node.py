"""Node (core/v1): a machine that runs pods, registered and kept up to date by its agent.

The status is declared in full for what the agent reports (addresses, capacity, conditions,
system info, images); the dynamic-config, per-runtime-handler, feature and attached-volume
details are kept as written. ``nodeInfo`` requires all its fields, as the spec says.

Defaults (SetDefaults_NodeStatus): ``status.allocatable`` is ``status.capacity`` when the
agent does not say otherwise. Updates may set ``spec.podCIDR(s)`` and ``spec.providerID``
once, never change them.
"""

from __future__ import annotations

from typing import Any

from shoal.api.errors import FieldError, duplicate, forbidden, invalid, required, unsupported
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import AGE, NAME, dig
from shoal.api.kinds.container import RESOURCE_LIST
from shoal.api.kinds.meta import TIME, top_level
from shoal.api.kinds.scheduling import TAINT_EFFECTS
from shoal.api.schema import Arr, Bool, Int, Obj, Raw, Str
from shoal.api.validation import check, cidr, label_value, qualified_name

ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"

TAINT = Obj(
    "io.k8s.api.core.v1.Taint",
    {"effect": Str(), "key": Str(), "timeAdded": TIME, "value": Str()},
    required=("key", "effect"),
)

NODE_SPEC = Obj(
    "io.k8s.api.core.v1.NodeSpec",
    {
        "configSource": Raw(),  # deprecated dynamic kubelet config; kept as written
        "externalID": Str(),
        "podCIDR": Str(),
        "podCIDRs": Arr(Str(), strategy="merge"),
        "providerID": Str(),
        "taints": Arr(TAINT),
        "unschedulable": Bool(),
    },
)

NODE_CONDITION = Obj(
    "io.k8s.api.core.v1.NodeCondition",
    {
        "lastHeartbeatTime": TIME,
        "lastTransitionTime": TIME,
        "message": Str(),
        "reason": Str(),
        "status": Str(),
        "type": Str(),
    },
    required=("type", "status"),
)

_SYSTEM_INFO_FIELDS = (
    "machineID",
    "systemUUID",
    "bootID",
    "kernelVersion",
    "osImage",
    "containerRuntimeVersion",
    "kubeletVersion",
    "kubeProxyVersion",
    "operatingSystem",
    "architecture",
)
NODE_SYSTEM_INFO = Obj(
    "io.k8s.api.core.v1.NodeSystemInfo",
    {**{f: Str() for f in _SYSTEM_INFO_FIELDS}, "swap": Raw()},
    required=_SYSTEM_INFO_FIELDS,
)

NODE_STATUS = Obj(
    "io.k8s.api.core.v1.NodeStatus",
    {
        "addresses": Arr(
            Obj(
                "io.k8s.api.core.v1.NodeAddress",
                {"address": Str(), "type": Str()},
                required=("type", "address"),
            ),
            merge_key="type",
            strategy="merge",
            map_keys=("type",),
        ),
        "allocatable": RESOURCE_LIST,
        "capacity": RESOURCE_LIST,
        "conditions": Arr(NODE_CONDITION, merge_key="type", strategy="merge", map_keys=("type",)),
        "config": Raw(),
        "daemonEndpoints": Obj(
            "io.k8s.api.core.v1.NodeDaemonEndpoints",
            {
                "kubeletEndpoint": Obj(
                    "io.k8s.api.core.v1.DaemonEndpoint", {"Port": Int()}, required=("Port",)
                )
            },
        ),
        "declaredFeatures": Arr(Str()),
        "features": Raw(),
        "images": Arr(
            Obj("io.k8s.api.core.v1.ContainerImage", {"names": Arr(Str()), "sizeBytes": Int(format="int64")})
        ),
        "nodeInfo": NODE_SYSTEM_INFO,
        "phase": Str(),
        "runtimeHandlers": Arr(Raw()),
        "volumesAttached": Arr(Raw()),
        "volumesInUse": Arr(Str()),
    },
)


def default(obj: Object) -> None:
    status = obj.get("status")
    if status and "capacity" in status and "allocatable" not in status:
        status["allocatable"] = dict(status["capacity"])


def validate(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = validate_taints(spec.get("taints") or [], "spec.taints")
    if spec.get("podCIDR"):
        errors += check("spec.podCIDR", spec["podCIDR"], cidr)
    cidrs = spec.get("podCIDRs") or []
    for i, value in enumerate(cidrs):
        errors += check(f"spec.podCIDRs[{i}]", value, cidr)
    if len(cidrs) > 2:
        errors.append(invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"))
    return errors


def validate_taints(taints: list[dict[str, Any]], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        item = f"{path}[{i}]"
        key, effect = taint.get("key", ""), taint.get("effect", "")
        errors += check(f"{item}.key", key, qualified_name)
        problems = label_value(taint.get("value", ""))
        if problems:
            errors.append(invalid(f"{item}.value", taint.get("value", ""), ";".join(problems)))
        if not effect:
            errors.append(required(f"{item}.effect"))
        elif effect not in TAINT_EFFECTS:
            errors.append(unsupported(f"{item}.effect", effect, list(TAINT_EFFECTS)))
        if (key, effect) in seen:
            error = duplicate(item, taint)
            errors.append(
                FieldError(
                    error.path, error.type, "taints must be unique by key and effect pair", taint, True
                )
            )
        seen.add((key, effect))
    return errors


def validate_update(new: Object, old: Object) -> list[FieldError]:
    errors: list[FieldError] = []
    old_cidrs = dig(old, "spec", "podCIDRs", default=[])
    if old_cidrs and dig(new, "spec", "podCIDRs", default=[]) != old_cidrs:
        errors.append(
            forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid')
        )
    old_provider = dig(old, "spec", "providerID", default="")
    if old_provider and dig(new, "spec", "providerID", default="") != old_provider:
        errors.append(
            forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid')
        )
    return errors


# --- table columns (kubectl's node printer) ---


def _status(node: Object) -> str:
    parts = []
    for condition in dig(node, "status", "conditions", default=[]):
        if condition.get("type") == "Ready":
            parts.append("Ready" if condition.get("status") == "True" else "NotReady")
    if not parts:
        parts.append("Unknown")
    if dig(node, "spec", "unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _roles(node: Object) -> str:
    roles = set()
    for key, value in dig(node, "metadata", "labels", default={}).items():
        if key.startswith(ROLE_LABEL_PREFIX) and key[len(ROLE_LABEL_PREFIX) :]:
            roles.add(key[len(ROLE_LABEL_PREFIX) :])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _address(kind: str) -> Any:
    def cell(node: Object) -> str:
        for address in dig(node, "status", "addresses", default=[]):
            if address.get("type") == kind:
                return str(address.get("address", ""))
        return "<none>"

    return cell


def _info(field: str) -> Any:
    return lambda node: dig(node, "status", "nodeInfo", field) or "<unknown>"


NODE = Kind(
    keeps_status_on_create=True,
    group="",
    version="v1",
    kind="Node",
    plural="nodes",
    singular="node",
    namespaced=False,
    short_names=("no",),
    schema=top_level("io.k8s.api.core.v1.Node", spec=NODE_SPEC, status=NODE_STATUS),
    columns=(
        NAME,
        Column("Status", _status),
        Column("Roles", _roles),
        AGE,
        Column("Version", lambda o: dig(o, "status", "nodeInfo", "kubeletVersion", default="")),
        Column("Internal-IP", _address("InternalIP"), priority=1),
        Column("External-IP", _address("ExternalIP"), priority=1),
        Column("OS-Image", _info("osImage"), priority=1),
        Column("Kernel-Version", _info("kernelVersion"), priority=1),
        Column("Container-Runtime", _info("containerRuntimeVersion"), priority=1),
    ),
    default=default,
    validate=validate,
    validate_update=validate_update,
    field_selectors={"spec.unschedulable": lambda o: "true" if dig(o, "spec", "unschedulable") else "false"},
)
