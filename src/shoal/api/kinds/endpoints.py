"""Endpoints (core/v1): the addresses and ports behind a Service, named like the Service.
Written by the endpoints controller (or by hand, for a Service without a selector).

Defaults (SetDefaults_Endpoints): ``subsets[].ports[].protocol`` TCP.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from shoal.api.errors import FieldError, invalid, required
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import AGE, NAME
from shoal.api.kinds.container import PROTOCOLS
from shoal.api.kinds.meta import OBJECT_REFERENCE, top_level
from shoal.api.schema import Arr, Int, Obj, Str
from shoal.api.validation import check, dns1123_label, dns1123_subdomain, ip_address, port_number

ENDPOINT_ADDRESS = Obj(
    "io.k8s.api.core.v1.EndpointAddress",
    {"hostname": Str(), "ip": Str(), "nodeName": Str(), "targetRef": OBJECT_REFERENCE},
    required=("ip",),
)
ENDPOINT_PORT = Obj(
    "io.k8s.api.core.v1.EndpointPort",
    {"appProtocol": Str(), "name": Str(), "port": Int(), "protocol": Str(enum=PROTOCOLS, default="TCP")},
    required=("port",),
)
ENDPOINT_SUBSET = Obj(
    "io.k8s.api.core.v1.EndpointSubset",
    {
        "addresses": Arr(ENDPOINT_ADDRESS),
        "notReadyAddresses": Arr(ENDPOINT_ADDRESS),
        "ports": Arr(ENDPOINT_PORT),
    },
)


def validate(obj: Object) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, subset in enumerate(obj.get("subsets") or []):
        path = f"subsets[{i}]"
        if not subset.get("addresses") and not subset.get("notReadyAddresses"):
            errors.append(required(path, "must specify `addresses` or `notReadyAddresses`"))
        for field in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(subset.get(field) or []):
                errors += _address(address, f"{path}.{field}[{j}]")
        ports = subset.get("ports") or []
        for j, port in enumerate(ports):
            item = f"{path}.ports[{j}]"
            name = port.get("name", "")
            if not name and len(ports) > 1:
                errors.append(required(f"{item}.name"))
            elif name:
                errors += check(f"{item}.name", name, dns1123_label)
            if "port" in port:
                errors += [invalid(f"{item}.port", port["port"], p) for p in port_number(port["port"])]
    return errors


def _address(address: dict[str, Any], path: str) -> list[FieldError]:
    ip = address.get("ip", "")
    errors = check(f"{path}.ip", ip, ip_address)
    if not errors:
        errors += _non_special_ip(ip, f"{path}.ip")
    if address.get("hostname"):
        errors += check(f"{path}.hostname", address["hostname"], dns1123_label)
    if address.get("nodeName"):
        errors += check(f"{path}.nodeName", address["nodeName"], dns1123_subdomain)
    return errors


def _non_special_ip(ip: str, path: str) -> list[FieldError]:
    # Traffic sent to these never leaves the node that sends it: useless as an endpoint.
    addr = ipaddress.ip_address(ip)
    if addr.is_unspecified:
        return [invalid(path, ip, "may not be unspecified (0.0.0.0, ::)")]
    if addr.is_loopback:
        return [invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)")]
    if addr.is_link_local:
        return [invalid(path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")]
    if addr in ipaddress.ip_network("224.0.0.0/24") or addr in ipaddress.ip_network("ff02::/16"):
        return [invalid(path, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")]
    return []


def endpoints_text(obj: Object, limit: int = 3) -> str:
    """kubectl's ENDPOINTS cell: up to three ``ip:port`` pairs, then ``+ N more...``."""
    subsets = obj.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        # Headless services may have no ports: then the bare addresses.
        groups = (
            [[f"{_host(ip)}:{p.get('port')}" for ip in addresses] for p in ports] if ports else [addresses]
        )
        for group in groups:
            count += len(group)
            shown.extend(group[: max(0, limit - len(shown))])
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if count > limit else text


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


ENDPOINTS = Kind(
    group="",
    version="v1",
    kind="Endpoints",
    plural="endpoints",
    singular="endpoints",
    namespaced=True,
    short_names=("ep",),
    has_status=False,
    schema=top_level("io.k8s.api.core.v1.Endpoints", subsets=Arr(ENDPOINT_SUBSET)),
    columns=(
        NAME,
        Column("Endpoints", endpoints_text),
        AGE,
    ),
    validate=validate,
)
