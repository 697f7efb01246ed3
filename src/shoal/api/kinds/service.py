"""Service (core/v1): a stable virtual address (and DNS name) in front of a set of pods.

Defaults (SetDefaults_Service): ``type`` ClusterIP; ``sessionAffinity`` None (with ClientIP,
``sessionAffinityConfig.clientIP.timeoutSeconds`` 10800); ``ports[].protocol`` TCP;
``ports[].targetPort`` = ``port``; ``externalTrafficPolicy`` Cluster for NodePort and
LoadBalancer; ``internalTrafficPolicy`` Cluster except for ExternalName;
``allocateLoadBalancerNodePorts`` true for LoadBalancer; ``clusterIP`` and ``clusterIPs[0]``
kept in step; ``status.loadBalancer`` {}. IP families are left to the IP allocator.

Names are DNS-1035 labels (they become DNS names and environment variable prefixes).
``spec.clusterIP`` cannot change once set, except by turning the Service into an
ExternalName one. A server that replaces a Service whose new body omits clusterIP or
nodePorts should carry the allocated ones over before validation, as Kubernetes does.
"""

from __future__ import annotations

from typing import Any

from shoal.api.errors import FieldError, duplicate, forbidden, invalid, required, unsupported
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import AGE, NAME, dig
from shoal.api.kinds.container import PROTOCOLS
from shoal.api.kinds.meta import CONDITION, top_level
from shoal.api.schema import Arr, Bool, Int, IntOrStr, Map, Obj, Str
from shoal.api.validation import (
    check,
    cidr,
    dns1035_label,
    dns1123_label,
    dns1123_subdomain,
    ip_address,
    labels,
    port_num_or_name,
    port_number,
)

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
NODE_PORT_RANGE = (30000, 32767)
TRAFFIC_POLICIES = ("Cluster", "Local")
_MAX_AFFINITY_SECONDS = 86400

SERVICE_PORT = Obj(
    "io.k8s.api.core.v1.ServicePort",
    {
        "appProtocol": Str(),
        "name": Str(),
        "nodePort": Int(),
        "port": Int(),
        "protocol": Str(enum=PROTOCOLS, default="TCP"),
        "targetPort": IntOrStr(),
    },
    required=("port",),
)

SERVICE_SPEC = Obj(
    "io.k8s.api.core.v1.ServiceSpec",
    {
        "allocateLoadBalancerNodePorts": Bool(),
        "clusterIP": Str(),
        "clusterIPs": Arr(Str()),
        "externalIPs": Arr(Str()),
        "externalName": Str(),
        "externalTrafficPolicy": Str(),
        "healthCheckNodePort": Int(),
        "internalTrafficPolicy": Str(),
        "ipFamilies": Arr(Str()),
        "ipFamilyPolicy": Str(),
        "loadBalancerClass": Str(),
        "loadBalancerIP": Str(),
        "loadBalancerSourceRanges": Arr(Str()),
        "ports": Arr(SERVICE_PORT, merge_key="port", strategy="merge", map_keys=("port", "protocol")),
        "publishNotReadyAddresses": Bool(),
        "selector": Map(Str()),
        "sessionAffinity": Str(enum=("ClientIP", "None"), default="None"),
        "sessionAffinityConfig": Obj(
            "io.k8s.api.core.v1.SessionAffinityConfig",
            {"clientIP": Obj("io.k8s.api.core.v1.ClientIPConfig", {"timeoutSeconds": Int()})},
        ),
        "trafficDistribution": Str(),
        "type": Str(enum=SERVICE_TYPES, default="ClusterIP"),
    },
)

LOAD_BALANCER_STATUS = Obj(
    "io.k8s.api.core.v1.LoadBalancerStatus",
    {
        "ingress": Arr(
            Obj(
                "io.k8s.api.core.v1.LoadBalancerIngress",
                {
                    "hostname": Str(),
                    "ip": Str(),
                    "ipMode": Str(),
                    "ports": Arr(
                        Obj(
                            "io.k8s.api.core.v1.PortStatus",
                            {"error": Str(), "port": Int(), "protocol": Str()},
                            required=("port", "protocol"),
                        )
                    ),
                },
            )
        )
    },
)

SERVICE_STATUS = Obj(
    "io.k8s.api.core.v1.ServiceStatus",
    {
        "conditions": Arr(CONDITION, merge_key="type", strategy="merge", map_keys=("type",)),
        "loadBalancer": LOAD_BALANCER_STATUS,
    },
)


def default(obj: Object) -> None:
    spec = obj.setdefault("spec", {})
    kind = spec.setdefault("type", "ClusterIP")
    affinity = spec.setdefault("sessionAffinity", "None")
    if affinity == "ClientIP":
        client_ip = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
        client_ip.setdefault("timeoutSeconds", 10800)
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and "port" in port:
            port["targetPort"] = port["port"]
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    elif spec.get("clusterIPs") and not spec.get("clusterIP"):
        spec["clusterIP"] = spec["clusterIPs"][0]
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def validate(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    kind = spec.get("type", "")
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    errors: list[FieldError] = []
    if kind == "ExternalName":
        name = spec.get("externalName", "")
        errors += (
            check("spec.externalName", name.rstrip("."), dns1123_subdomain)
            if name
            else [required("spec.externalName")]
        )
        if spec.get("clusterIP"):
            errors.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
    elif not ports and not headless:
        errors.append(required("spec.ports"))
    errors += _ports(ports, kind)
    errors += _cluster_ips(spec, kind)
    for i, ip in enumerate(spec.get("externalIPs") or []):
        errors += check(f"spec.externalIPs[{i}]", ip, ip_address)
    errors += labels("spec.selector", spec.get("selector"))
    errors += _session_affinity(spec)
    errors += _traffic_policies(spec, kind)
    ranges = spec.get("loadBalancerSourceRanges") or []
    if ranges and kind != "LoadBalancer":
        detail = "may only be used when `type` is 'LoadBalancer'"
        errors.append(forbidden("spec.loadBalancerSourceRanges", detail))
    for i, value in enumerate(ranges):
        errors += check(f"spec.loadBalancerSourceRanges[{i}]", value, cidr)
    return errors


def _ports(ports: list[dict[str, Any]], kind: str) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    node_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        item = f"spec.ports[{i}]"
        name = port.get("name", "")
        if not name and len(ports) > 1:
            errors.append(required(f"{item}.name"))
        elif name:
            problems = check(f"{item}.name", name, dns1123_label)
            errors += problems
            if not problems and name in names:
                errors.append(duplicate(f"{item}.name", name))
            names.add(name)
        if "port" in port:
            errors += [invalid(f"{item}.port", port["port"], p) for p in port_number(port["port"])]
        protocol = port.get("protocol", "")
        if not protocol:
            errors.append(required(f"{item}.protocol"))
        if "targetPort" in port:
            errors += port_num_or_name(f"{item}.targetPort", port["targetPort"])
        node_port = port.get("nodePort", 0)
        if node_port and kind == "ClusterIP":
            errors.append(forbidden(f"{item}.nodePort", "may not be used when `type` is 'ClusterIP'"))
        elif node_port and not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
            detail = "provided port is not in the valid range. The range of valid ports is {}-{}".format(
                *NODE_PORT_RANGE
            )
            errors.append(invalid(f"{item}.nodePort", node_port, detail))
        elif node_port and (node_port, protocol) in node_ports:
            errors.append(duplicate(f"{item}.nodePort", node_port))
        if node_port:
            node_ports.add((node_port, protocol))
        key = (port.get("port"), protocol)
        if key in seen:
            errors.append(duplicate(item, {"port": key[0], "protocol": key[1]}))
        seen.add(key)
    return errors


def _cluster_ips(spec: dict[str, Any], kind: str) -> list[FieldError]:
    errors: list[FieldError] = []
    ips = spec.get("clusterIPs") or []
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if kind in ("NodePort", "LoadBalancer"):
                errors.append(
                    invalid("spec.clusterIPs[0]", ip, f"may not be set to 'None' for {kind} services")
                )
            continue
        errors += check(f"spec.clusterIPs[{i}]", ip, ip_address)
    if ips and spec.get("clusterIP") and ips[0] != spec["clusterIP"]:
        errors.append(invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    return errors


def _session_affinity(spec: dict[str, Any]) -> list[FieldError]:
    config = spec.get("sessionAffinityConfig")
    if spec.get("sessionAffinity") == "None":
        if config:
            return [
                invalid("spec.sessionAffinityConfig", config, "must not be set when session affinity is None")
            ]
        return []
    timeout = dig(config, "clientIP", "timeoutSeconds")
    if timeout is not None and not 0 < timeout <= _MAX_AFFINITY_SECONDS:
        detail = f"must be greater than 0 and less than {_MAX_AFFINITY_SECONDS}"
        return [invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout, detail)]
    return []


def _traffic_policies(spec: dict[str, Any], kind: str) -> list[FieldError]:
    errors: list[FieldError] = []
    external = spec.get("externalTrafficPolicy", "")
    reachable = kind in ("NodePort", "LoadBalancer") or (kind == "ClusterIP" and spec.get("externalIPs"))
    if external and not reachable:
        detail = "may only be set for externally-accessible services"
        errors.append(invalid("spec.externalTrafficPolicy", external, detail))
    elif external and external not in TRAFFIC_POLICIES:
        errors.append(unsupported("spec.externalTrafficPolicy", external, list(TRAFFIC_POLICIES)))
    internal = spec.get("internalTrafficPolicy")
    if kind != "ExternalName":
        if not internal:
            errors.append(required("spec.internalTrafficPolicy"))
        elif internal not in TRAFFIC_POLICIES:
            errors.append(unsupported("spec.internalTrafficPolicy", internal, list(TRAFFIC_POLICIES)))
    return errors


def validate_update(new: Object, old: Object) -> list[FieldError]:
    old_ip, new_ip = dig(old, "spec", "clusterIP", default=""), dig(new, "spec", "clusterIP", default="")
    if old_ip and new_ip and new_ip != old_ip and dig(new, "spec", "type") != "ExternalName":
        return [invalid("spec.clusterIP", new_ip, "field is immutable")]
    return []


# --- table columns (kubectl's service printer) ---


def _external_ip(svc: Object) -> str:
    spec = svc.get("spec") or {}
    kind, external = spec.get("type"), spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        ingress = dig(svc, "status", "loadBalancer", "ingress", default=[])
        found = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
        return ",".join([*found, *external]) or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def _ports_text(svc: Object) -> str:
    parts = []
    for port in dig(svc, "spec", "ports", default=[]):
        protocol = port.get("protocol", "TCP")
        if port.get("nodePort"):
            parts.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            parts.append(f"{port.get('port')}/{protocol}")
    return ",".join(parts) or "<none>"


def _selector(svc: Object) -> str:
    selector = dig(svc, "spec", "selector", default={})
    return ",".join(f"{k}={selector[k]}" for k in sorted(selector)) or "<none>"


SERVICE = Kind(
    group="",
    version="v1",
    kind="Service",
    plural="services",
    singular="service",
    namespaced=True,
    short_names=("svc",),
    categories=("all",),
    name_rule=dns1035_label,
    schema=top_level("io.k8s.api.core.v1.Service", spec=SERVICE_SPEC, status=SERVICE_STATUS),
    columns=(
        NAME,
        Column("Type", lambda o: dig(o, "spec", "type", default="")),
        Column("Cluster-IP", lambda o: dig(o, "spec", "clusterIP") or "<none>"),
        Column("External-IP", _external_ip),
        Column("Port(s)", _ports_text),
        AGE,
        Column("Selector", _selector, priority=1),
    ),
    default=default,
    validate=validate,
    validate_update=validate_update,
)
