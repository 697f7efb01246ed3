"""Namespace, Node, Service, Endpoints, Secret, ConfigMap, Event and Lease."""

from __future__ import annotations

import base64
import copy
from fractions import Fraction
from typing import Any

import pytest

from shoal.api.admission import admit
from shoal.api.kind import Kind
from shoal.api.kinds import CONFIG_MAP, ENDPOINTS, EVENT, LEASE, NAMESPACE, NODE, SECRET, SERVICE
from shoal.api.quantity import parse_quantity


def obj(kind: Kind, name: str = "x", namespace: str | None = "default", **fields: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace and kind.namespaced:
        meta["namespace"] = namespace
    return {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta, **fields}


def admitted(kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
    out, errs, unknown = admit(kind, body)
    assert [str(e) for e in errs] == [] and unknown == []
    return out


def paths(kind: Kind, body: dict[str, Any]) -> list[str]:
    return [f"{e.path}: {e.type}" for e in admit(kind, body)[1]]


def messages(kind: Kind, body: dict[str, Any]) -> list[str]:
    return [str(e) for e in admit(kind, body)[1]]


def update_errors(kind: Kind, new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    assert kind.validate_update is not None
    return [str(e) for e in kind.validate_update(new, old)]


def cells(kind: Kind, body: dict[str, Any], wide: bool = False) -> dict[str, Any]:
    return {c.name: c.value(body) for c in kind.columns if c.name != "Age" and (wide or c.priority == 0)}


# --- Namespace ---


def test_namespace_defaults() -> None:
    out = admitted(NAMESPACE, obj(NAMESPACE, "team-a"))
    assert out["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert out["spec"] == {"finalizers": ["kubernetes"]}
    assert out["status"] == {"phase": "Active"}
    assert cells(NAMESPACE, out) == {"Name": "team-a", "Status": "Active"}
    assert NAMESPACE.field_selectors["status.phase"](out) == "Active"


def test_terminating_namespace_keeps_its_finalizers_as_they_are() -> None:
    body = obj(NAMESPACE, "gone", spec={"finalizers": []}, status={"phase": "Terminating"})
    body["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    out = admitted(NAMESPACE, body)
    assert out["spec"]["finalizers"] == [] and out["status"]["phase"] == "Terminating"


def test_namespace_invalid_examples() -> None:
    assert paths(NAMESPACE, obj(NAMESPACE, "Team.A")) == ["metadata.name: Invalid value"]
    assert messages(NAMESPACE, obj(NAMESPACE, "a", spec={"finalizers": ["custom"]})) == [
        'spec.finalizers: Invalid value: "custom": '
        "name is neither a standard finalizer name nor is it fully qualified"
    ]
    assert paths(NAMESPACE, obj(NAMESPACE, "a", status={"phase": "Gone"})) == [
        "status.phase: Unsupported value"
    ]


# --- Node ---


def node_status() -> dict[str, Any]:
    info = {
        f: "x"
        for f in (
            "machineID",
            "systemUUID",
            "bootID",
            "kernelVersion",
            "osImage",
            "containerRuntimeVersion",
            "kubeProxyVersion",
            "operatingSystem",
            "architecture",
        )
    }
    return {
        "capacity": {"cpu": 4, "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}],
        "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
        "nodeInfo": {**info, "kubeletVersion": "v1.31.0", "osImage": "Debian 12"},
    }


def test_node_defaults_allocatable_from_capacity() -> None:
    out = admitted(NODE, obj(NODE, "node-1", status=node_status()))
    assert out["status"]["capacity"] == {"cpu": "4", "memory": "8Gi", "pods": "110"}
    assert out["status"]["allocatable"] == out["status"]["capacity"]


def test_node_columns() -> None:
    out = admitted(NODE, obj(NODE, "node-1", spec={"unschedulable": True}, status=node_status()))
    out["metadata"]["labels"] = {
        "node-role.kubernetes.io/control-plane": "",
        "node-role.kubernetes.io/worker": "",
    }
    assert cells(NODE, out, wide=True) == {
        "Name": "node-1",
        "Status": "Ready,SchedulingDisabled",
        "Roles": "control-plane,worker",
        "Version": "v1.31.0",
        "Internal-IP": "192.168.1.10",
        "External-IP": "<none>",
        "OS-Image": "Debian 12",
        "Kernel-Version": "x",
        "Container-Runtime": "x",
    }
    out["status"]["conditions"] = []
    assert cells(NODE, out)["Status"] == "Unknown,SchedulingDisabled"
    assert NODE.field_selectors["spec.unschedulable"](out) == "true"


def test_node_invalid_examples() -> None:
    taints = [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "other", "effect": "NoSchedule"},
        {"key": "bad key", "effect": "Sometimes"},
    ]
    assert paths(NODE, obj(NODE, "n", spec={"taints": taints, "podCIDR": "10.0.0.0/33"})) == [
        "spec.taints[1]: Duplicate value",
        "spec.taints[2].key: Invalid value",
        "spec.taints[2].effect: Unsupported value",
        "spec.podCIDR: Invalid value",
    ]
    status = node_status()
    del status["nodeInfo"]["bootID"]
    assert paths(NODE, obj(NODE, "n", status=status)) == ["status.nodeInfo.bootID: Required value"]


def test_node_pod_cidr_is_set_once() -> None:
    old = admitted(NODE, obj(NODE, "n", spec={"podCIDR": "10.0.1.0/24", "podCIDRs": ["10.0.1.0/24"]}))
    new = copy.deepcopy(old)
    new["spec"]["podCIDRs"] = ["10.0.2.0/24"]
    assert [e.split(":")[0] for e in update_errors(NODE, new, old)] == ["spec.podCIDRs"]
    fresh = admitted(NODE, obj(NODE, "n"))
    assert update_errors(NODE, old, fresh) == []


# --- Service ---


def service(**spec: Any) -> dict[str, Any]:
    return obj(SERVICE, "web", spec={"selector": {"app": "web"}, "ports": [{"port": 80}], **spec})


def test_service_defaults() -> None:
    out = admitted(SERVICE, service())
    assert out["spec"] == {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
    }
    assert out["status"] == {"loadBalancer": {}}


def test_service_type_specific_defaults() -> None:
    out = admitted(SERVICE, service(type="LoadBalancer", sessionAffinity="ClientIP", clusterIP="10.96.0.10"))
    spec = out["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["allocateLoadBalancerNodePorts"] is True
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert spec["clusterIPs"] == ["10.96.0.10"]
    ext = admitted(
        SERVICE, obj(SERVICE, "db", spec={"type": "ExternalName", "externalName": "db.example.com"})
    )
    assert "internalTrafficPolicy" not in ext["spec"]


def test_service_named_target_port_is_kept() -> None:
    out = admitted(SERVICE, service(ports=[{"name": "http", "port": 80, "targetPort": "web"}]))
    assert out["spec"]["ports"][0]["targetPort"] == "web"


def test_service_invalid_examples() -> None:
    ports = [
        {"port": 0},
        {"name": "http", "port": 80, "nodePort": 31000},
        {"name": "http", "port": 80, "targetPort": "Bad_Name"},
    ]
    assert paths(SERVICE, service(ports=ports, type="Bogus")) == [
        "spec.type: Unsupported value",
        "spec.ports[0].name: Required value",
        "spec.ports[0].port: Invalid value",
        "spec.ports[0].targetPort: Invalid value",  # defaulted from port
        "spec.ports[2].name: Duplicate value",
        "spec.ports[2].targetPort: Invalid value",
        "spec.ports[2]: Duplicate value",
    ]


def test_service_ports_required_except_headless_and_external_name() -> None:
    assert messages(SERVICE, obj(SERVICE, "web", spec={"selector": {"app": "web"}})) == [
        "spec.ports: Required value"
    ]
    assert paths(SERVICE, obj(SERVICE, "web", spec={"clusterIP": "None"})) == []
    assert paths(SERVICE, obj(SERVICE, "db", spec={"type": "ExternalName"})) == [
        "spec.externalName: Required value"
    ]


def test_service_node_ports() -> None:
    assert messages(SERVICE, service(ports=[{"port": 80, "nodePort": 30080}])) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]
    assert messages(SERVICE, service(type="NodePort", ports=[{"port": 80, "nodePort": 80}])) == [
        "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767"
    ]
    assert paths(SERVICE, service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])) == []


def test_service_addresses_and_policies() -> None:
    body = service(
        clusterIP="10.0.0.300",
        externalIPs=["nope"],
        externalTrafficPolicy="Local",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}},
    )
    assert paths(SERVICE, body) == [
        "spec.clusterIPs[0]: Invalid value",
        "spec.externalIPs[0]: Invalid value",
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value",
    ]
    assert messages(SERVICE, service(externalTrafficPolicy="Local")) == [
        'spec.externalTrafficPolicy: Invalid value: "Local": '
        "may only be set for externally-accessible services"
    ]


def test_service_name_is_a_dns1035_label() -> None:
    body = service()
    body["metadata"]["name"] = "7-web"
    assert [e.split(":")[0] for e in messages(SERVICE, body)] == ["metadata.name"]


def test_service_cluster_ip_is_immutable_once_set() -> None:
    old = admitted(SERVICE, service(clusterIP="10.96.0.10"))
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = new["spec"]["clusterIPs"][0] = "10.96.0.11"
    assert update_errors(SERVICE, new, old) == [
        'spec.clusterIP: Invalid value: "10.96.0.11": field is immutable'
    ]
    unallocated = admitted(SERVICE, service())
    assert update_errors(SERVICE, old, unallocated) == []


def test_service_columns() -> None:
    out = admitted(
        SERVICE, service(type="NodePort", clusterIP="10.96.0.10", ports=[{"port": 80, "nodePort": 30080}])
    )
    assert cells(SERVICE, out, wide=True) == {
        "Name": "web",
        "Type": "NodePort",
        "Cluster-IP": "10.96.0.10",
        "External-IP": "<none>",
        "Port(s)": "80:30080/TCP",
        "Selector": "app=web",
    }
    lb = admitted(SERVICE, service(type="LoadBalancer"))
    assert cells(SERVICE, lb)["External-IP"] == "<pending>"
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}
    assert cells(SERVICE, lb)["External-IP"] == "203.0.113.7"


# --- Endpoints ---


def test_endpoints_defaults_validation_and_columns() -> None:
    subsets = [
        {
            "addresses": [{"ip": f"10.1.0.{i}"} for i in range(1, 4)],
            "ports": [{"port": 8080, "name": "http"}, {"port": 9090, "name": "metrics"}],
        }
    ]
    out = admitted(ENDPOINTS, obj(ENDPOINTS, "web", subsets=subsets))
    assert out["subsets"][0]["ports"][0] == {"port": 8080, "name": "http", "protocol": "TCP"}
    assert cells(ENDPOINTS, out) == {
        "Name": "web",
        "Endpoints": "10.1.0.1:8080,10.1.0.2:8080,10.1.0.3:8080 + 3 more...",
    }
    bad = [{"addresses": [{"ip": "127.0.0.1"}, {"ip": "x"}], "ports": [{"port": 80}, {"port": 81}]}, {}]
    assert paths(ENDPOINTS, obj(ENDPOINTS, "web", subsets=bad)) == [
        "subsets[0].addresses[0].ip: Invalid value",
        "subsets[0].addresses[1].ip: Invalid value",
        "subsets[0].ports[0].name: Required value",
        "subsets[0].ports[1].name: Required value",
        "subsets[1]: Required value",
    ]
    assert cells(ENDPOINTS, obj(ENDPOINTS, "web"))["Endpoints"] == "<none>"


# --- Secret ---


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_defaults_and_string_data() -> None:
    out = admitted(
        SECRET, obj(SECRET, "s", data={"a": b64("old"), "b": b64("kept")}, stringData={"a": "new"})
    )
    assert out["type"] == "Opaque"
    assert out["data"] == {"a": b64("new"), "b": b64("kept")}
    assert "stringData" not in out
    assert cells(SECRET, out) == {"Name": "s", "Type": "Opaque", "Data": 2}
    assert SECRET.field_selectors["type"](out) == "Opaque"


def test_secret_invalid_examples() -> None:
    assert messages(SECRET, obj(SECRET, "s", data={"bad/key": b64("x"), "v": "not base64!"})) == [
        'data[bad/key]: Invalid value: "bad/key": '
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
        'data[v]: Invalid value: "<secret contents redacted>": must be a base64-encoded string',
    ]
    assert paths(SECRET, obj(SECRET, "s", type="kubernetes.io/tls", data={"tls.crt": b64("c")})) == [
        "data[tls.key]: Required value"
    ]
    assert paths(
        SECRET, obj(SECRET, "s", type="kubernetes.io/dockerconfigjson", data={".dockerconfigjson": b64("{")})
    ) == ["data[.dockerconfigjson]: Invalid value"]
    assert paths(SECRET, obj(SECRET, "s", type="kubernetes.io/basic-auth")) == [
        "data[username]: Required value",
        "data[password]: Required value",
    ]
    assert paths(SECRET, obj(SECRET, "s", type="kubernetes.io/service-account-token")) == [
        "metadata.annotations[kubernetes.io/service-account.name]: Required value"
    ]


def test_secret_type_and_immutable_data() -> None:
    old = admitted(SECRET, obj(SECRET, "s", data={"a": b64("1")}, immutable=True))
    new = copy.deepcopy(old)
    new["data"]["a"] = b64("2")
    new["type"] = "example.com/custom"
    del new["immutable"]
    assert update_errors(SECRET, new, old) == [
        'type: Invalid value: "example.com/custom": field is immutable',
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set",
    ]


def test_configmap_immutable_data() -> None:
    old = admitted(CONFIG_MAP, obj(CONFIG_MAP, "c", data={"a": "1"}, immutable=True))
    new = copy.deepcopy(old)
    new["binaryData"] = {"b": b64("x")}
    assert update_errors(CONFIG_MAP, new, old) == [
        "binaryData: Forbidden: field is immutable when `immutable` is set"
    ]
    mutable = admitted(CONFIG_MAP, obj(CONFIG_MAP, "c", data={"a": "1"}))
    assert update_errors(CONFIG_MAP, {**mutable, "data": {"a": "2"}}, mutable) == []


# --- Event ---


def event(**fields: Any) -> dict[str, Any]:
    involved = {
        "kind": "Pod",
        "name": "web-1",
        "namespace": "default",
        "uid": "u1",
        "fieldPath": "spec.containers{web}",
    }
    return obj(
        EVENT, "web-1.17a", involvedObject=involved, reason="Pulled", message="Pulled image ", **fields
    )


def test_event_valid_and_columns() -> None:
    out = admitted(EVENT, event(type="Normal", source={"component": "kubelet", "host": "node-1"}, count=3))
    row = cells(EVENT, out, wide=True)
    assert row["Object"] == "pod/web-1" and row["Message"] == "Pulled image"
    assert (row["Source"], row["Count"], row["Subobject"]) == ("kubelet, node-1", 3, "spec.containers{web}")
    assert row["Last Seen"] == "<unknown>"
    assert [c.name for c in EVENT.columns if c.priority == 0] == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Message",
    ]
    selectors = EVENT.field_selectors
    assert selectors["involvedObject.name"](out) == "web-1"
    assert selectors["involvedObject.kind"](out) == "Pod"
    assert selectors["reason"](out) == "Pulled" and selectors["type"](out) == "Normal"


def test_event_invalid_examples() -> None:
    body = event()
    del body["involvedObject"]
    assert paths(EVENT, body) == ["involvedObject: Required value"]
    body = event()
    body["metadata"]["namespace"] = "other"
    assert messages(EVENT, body) == [
        'involvedObject.namespace: Invalid value: "default": does not match event.namespace'
    ]
    assert paths(EVENT, event(eventTime="2024-01-01T00:00:00.000000Z")) == [
        "reportingComponent: Required value",
        "reportingInstance: Required value",
        "action: Required value",
    ]


def test_events_about_cluster_scoped_objects_live_in_default() -> None:
    body = obj(EVENT, "node-1.1", involvedObject={"kind": "Node", "name": "node-1"}, reason="Ready")
    assert paths(EVENT, body) == []
    body["metadata"]["namespace"] = "team-a"
    assert paths(EVENT, body) == ["involvedObject.namespace: Invalid value"]


# --- Lease ---


def test_lease_valid_and_columns() -> None:
    spec = {
        "holderIdentity": "controller-0",
        "leaseDurationSeconds": 15,
        "acquireTime": "2024-01-01T00:00:00.000000Z",
        "renewTime": "2024-01-01T00:00:10.123456Z",
        "leaseTransitions": 2,
    }
    out = admitted(LEASE, obj(LEASE, "shoal-controller", spec=spec))
    assert out["apiVersion"] == "coordination.k8s.io/v1"
    assert cells(LEASE, out) == {"Name": "shoal-controller", "Holder": "controller-0"}


def test_lease_invalid_examples() -> None:
    spec = {
        "leaseDurationSeconds": 0,
        "leaseTransitions": -1,
        "renewTime": "yesterday",
        "preferredHolder": "a",
    }
    assert messages(LEASE, obj(LEASE, "l", spec=spec)) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
        "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
        'spec.renewTime: Invalid value: "yesterday": must be an RFC 3339 date-time',
        "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined",
    ]


# --- quantities ---


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("2", Fraction(2)),
        ("128Mi", Fraction(128 * 2**20)),
        ("1G", Fraction(10**9)),
        ("1.5Gi", Fraction(3 * 2**29)),
        ("1e3", Fraction(1000)),
        ("-1k", Fraction(-1000)),
        (".5", Fraction(1, 2)),
        (3, Fraction(3)),
    ],
)
def test_parse_quantity(text: str | int, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1 Gi", "Mi", "1.2.3", "1KiB", "ten"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)
