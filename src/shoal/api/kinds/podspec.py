"""PodSpec and PodTemplateSpec (core/v1): one declaration for Pods, Deployments, ReplicaSets,
DaemonSets and Jobs.

Defaults of every pod spec, Pod or template (SetDefaults_PodSpec, SetDefaults_Container):

- ``restartPolicy`` Always, ``dnsPolicy`` ClusterFirst, ``terminationGracePeriodSeconds`` 30,
  ``schedulerName`` default-scheduler, ``securityContext`` {}
- each container: ``imagePullPolicy`` (Always for ``:latest`` or no tag, else IfNotPresent),
  ``resources`` {} and the schema defaults of ``container.py``
- each volume: ``emptyDir: {}`` when it names no source, and ``volume.py``'s defaults

Defaults of Pods only, not templates (SetDefaults_Pod; Kubernetes keeps them out of
templates so that a new default never changes every controller's template hash):

- ``enableServiceLinks`` true
- with ``hostNetwork``, each container port's ``hostPort`` = ``containerPort``
- a resource with a limit but no request is requested at its limit
"""

from __future__ import annotations

from typing import Any

from shoal.api.kinds.container import (
    APP_ARMOR_PROFILE,
    CONTAINER,
    RESOURCE_LIST,
    RESOURCE_REQUIREMENTS,
    SECCOMP_PROFILE,
    image_pull_policy,
)
from shoal.api.kinds.meta import OBJECT_META
from shoal.api.kinds.scheduling import AFFINITY, TOLERATION, TOPOLOGY_SPREAD_CONSTRAINT
from shoal.api.kinds.volume import VOLUME, default_volume
from shoal.api.schema import Arr, Bool, Int, Map, Obj, Raw, Str

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")

DEFAULT_RESTART_POLICY = "Always"
DEFAULT_DNS_POLICY = "ClusterFirst"
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_GRACE_PERIOD = 30

SYSCTL = Obj("io.k8s.api.core.v1.Sysctl", {"name": Str(), "value": Str()}, required=("name", "value"))
POD_SECURITY_CONTEXT = Obj(
    "io.k8s.api.core.v1.PodSecurityContext",
    {
        "appArmorProfile": APP_ARMOR_PROFILE,
        "fsGroup": Int(format="int64"),
        "fsGroupChangePolicy": Str(),
        "runAsGroup": Int(format="int64"),
        "runAsNonRoot": Bool(),
        "runAsUser": Int(format="int64"),
        "seLinuxChangePolicy": Str(),
        # SELinux and Windows options: no runtime of ours acts on them; kept as written.
        "seLinuxOptions": Raw(),
        "seccompProfile": SECCOMP_PROFILE,
        "supplementalGroups": Arr(Int(format="int64")),
        "supplementalGroupsPolicy": Str(),
        "sysctls": Arr(SYSCTL),
        "windowsOptions": Raw(),
    },
)
POD_DNS_CONFIG = Obj(
    "io.k8s.api.core.v1.PodDNSConfig",
    {
        "nameservers": Arr(Str()),
        "options": Arr(Obj("io.k8s.api.core.v1.PodDNSConfigOption", {"name": Str(), "value": Str()})),
        "searches": Arr(Str()),
    },
)
HOST_ALIAS = Obj("io.k8s.api.core.v1.HostAlias", {"hostnames": Arr(Str()), "ip": Str()}, required=("ip",))
LOCAL_OBJECT_REFERENCE = Obj("io.k8s.api.core.v1.LocalObjectReference", {"name": Str()})
READINESS_GATE = Obj(
    "io.k8s.api.core.v1.PodReadinessGate", {"conditionType": Str()}, required=("conditionType",)
)
SCHEDULING_GATE = Obj("io.k8s.api.core.v1.PodSchedulingGate", {"name": Str()}, required=("name",))
POD_OS = Obj("io.k8s.api.core.v1.PodOS", {"name": Str()}, required=("name",))


def _by_name(item: Obj, strategy: str = "merge") -> Arr:
    return Arr(item, merge_key="name", strategy=strategy, map_keys=("name",))


POD_SPEC = Obj(
    "io.k8s.api.core.v1.PodSpec",
    {
        "activeDeadlineSeconds": Int(format="int64"),
        "affinity": AFFINITY,
        "automountServiceAccountToken": Bool(),
        "containers": _by_name(CONTAINER),
        "dnsConfig": POD_DNS_CONFIG,
        "dnsPolicy": Str(enum=DNS_POLICIES, default=DEFAULT_DNS_POLICY),
        "enableServiceLinks": Bool(),
        # Ephemeral (debug) containers are added through a subresource shoal does not serve
        # yet; kept as written, with their list's merge rules.
        "ephemeralContainers": Arr(Raw(), merge_key="name", strategy="merge", map_keys=("name",)),
        "hostAliases": Arr(HOST_ALIAS, merge_key="ip", strategy="merge", map_keys=("ip",)),
        "hostIPC": Bool(),
        "hostNetwork": Bool(),
        "hostPID": Bool(),
        "hostUsers": Bool(),
        "hostname": Str(),
        "hostnameOverride": Str(),
        "imagePullSecrets": _by_name(LOCAL_OBJECT_REFERENCE),
        "initContainers": _by_name(CONTAINER),
        "nodeName": Str(),
        "nodeSelector": Map(Str()),
        "os": POD_OS,
        "overhead": RESOURCE_LIST,
        "preemptionPolicy": Str(),
        "priority": Int(),
        "priorityClassName": Str(),
        "readinessGates": Arr(READINESS_GATE),
        # Dynamic resource allocation claims need the resource.k8s.io API; kept as written.
        "resourceClaims": Arr(Raw(), merge_key="name", strategy="merge,retainKeys", map_keys=("name",)),
        "resources": RESOURCE_REQUIREMENTS,
        "restartPolicy": Str(enum=RESTART_POLICIES, default=DEFAULT_RESTART_POLICY),
        "runtimeClassName": Str(),
        "schedulerName": Str(default=DEFAULT_SCHEDULER),
        "schedulingGates": _by_name(SCHEDULING_GATE),
        "securityContext": POD_SECURITY_CONTEXT,
        "serviceAccount": Str(),
        "serviceAccountName": Str(),
        "setHostnameAsFQDN": Bool(),
        "shareProcessNamespace": Bool(),
        "subdomain": Str(),
        "terminationGracePeriodSeconds": Int(format="int64", default=DEFAULT_GRACE_PERIOD),
        "tolerations": Arr(TOLERATION),
        "topologySpreadConstraints": Arr(
            TOPOLOGY_SPREAD_CONSTRAINT,
            merge_key="topologyKey",
            strategy="merge",
            map_keys=("topologyKey", "whenUnsatisfiable"),
        ),
        "volumes": _by_name(VOLUME, "merge,retainKeys"),
        # Workload (gang scheduling) references are alpha; kept as written.
        "workloadRef": Raw(),
    },
    required=("containers",),
)

POD_TEMPLATE_SPEC = Obj("io.k8s.api.core.v1.PodTemplateSpec", {"metadata": OBJECT_META, "spec": POD_SPEC})


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers, then app containers."""
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def default_pod_spec(spec: dict[str, Any]) -> None:
    """The defaults every pod spec gets, in a Pod or in a template. The schema has already
    filled the simple ones when ``spec`` was present; they are repeated here for a template
    whose spec was left out entirely."""
    spec.setdefault("restartPolicy", DEFAULT_RESTART_POLICY)
    spec.setdefault("dnsPolicy", DEFAULT_DNS_POLICY)
    spec.setdefault("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD)
    spec.setdefault("schedulerName", DEFAULT_SCHEDULER)
    spec.setdefault("securityContext", {})
    for container in all_containers(spec):
        if "imagePullPolicy" not in container:
            container["imagePullPolicy"] = image_pull_policy(container.get("image", ""))
        container.setdefault("resources", {})
    for volume in spec.get("volumes") or []:
        default_volume(volume)


def default_pod_only(spec: dict[str, Any]) -> None:
    """The defaults only a Pod's own spec gets (see the module docstring)."""
    spec.setdefault("enableServiceLinks", True)
    host_network = spec.get("hostNetwork") is True
    for container in all_containers(spec):
        if host_network:
            for port in container.get("ports") or []:
                if "hostPort" not in port and "containerPort" in port:
                    port["hostPort"] = port["containerPort"]
        resources = container.get("resources") or {}
        limits = resources.get("limits")
        if limits:
            requests = resources.setdefault("requests", {})
            for name, value in limits.items():
                requests.setdefault(name, value)
            container["resources"] = resources


def default_pod_template(template: dict[str, Any]) -> None:
    default_pod_spec(template.setdefault("spec", {}))
