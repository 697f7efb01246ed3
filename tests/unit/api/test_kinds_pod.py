"""Pod: defaults, validation paths, update rules, table columns, field selectors."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shoal.api.admission import admit
from shoal.api.kinds import POD
from shoal.api.kinds.container import image_pull_policy
from shoal.api.kinds.podstatus import qos_class


def pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"containers": [{"name": "web", "image": "nginx:1.25"}]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {**base, **spec},
    }


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "image": "nginx:1.25", **fields}


def paths(obj: dict[str, Any]) -> list[str]:
    return [f"{e.path}: {e.type}" for e in admit(POD, obj)[1]]


def messages(obj: dict[str, Any]) -> list[str]:
    return [str(e) for e in admit(POD, obj)[1]]


def test_minimal_pod_gets_api_server_defaults() -> None:
    out, errs, unknown = admit(POD, pod())
    assert errs == [] and unknown == []
    assert out["spec"] == {
        "containers": [
            {
                "name": "web",
                "image": "nginx:1.25",
                "imagePullPolicy": "IfNotPresent",
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }
        ],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "terminationGracePeriodSeconds": 30,
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "enableServiceLinks": True,
    }
    assert out["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_nested_defaults_ports_probes_volumes_env() -> None:
    spec = {
        "containers": [
            container(
                ports=[{"containerPort": 80}],
                readinessProbe={"httpGet": {"port": "http"}},
                livenessProbe={"tcpSocket": {"port": 80}, "periodSeconds": 5},
                env=[{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                volumeMounts=[
                    {"name": "scratch", "mountPath": "/tmp"},
                    {"name": "cfg", "mountPath": "/etc/app"},
                ],
            )
        ],
        "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "app"}}],
    }
    out, errs, _ = admit(POD, pod(**spec))
    assert errs == []
    c = out["spec"]["containers"][0]
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c["readinessProbe"] == {
        "httpGet": {"port": "http", "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["livenessProbe"]["periodSeconds"] == 5
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "spec.nodeName", "apiVersion": "v1"}
    assert out["spec"]["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "app", "defaultMode": 420}},
    ]


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("registry.local:5000/team/app", "Always"),
        ("registry.local:5000/team/app:v2", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "Always"),
    ],
)
def test_image_pull_policy_default(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_explicit_values_are_kept() -> None:
    out, errs, _ = admit(POD, pod(restartPolicy="Never", containers=[container(imagePullPolicy="Never")]))
    assert errs == []
    assert out["spec"]["restartPolicy"] == "Never"
    assert out["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_existing_status_is_kept() -> None:
    body = {**pod(), "status": {"phase": "Running", "podIP": "10.0.0.5"}}
    out, errs, _ = admit(POD, body)
    assert errs == [] and out["status"] == {"phase": "Running", "podIP": "10.0.0.5"}


def test_limits_default_requests_and_qos() -> None:
    limits = {"cpu": "500m", "memory": "128Mi"}
    out, errs, _ = admit(POD, pod(containers=[container(resources={"limits": limits})]))
    assert errs == []
    assert out["spec"]["containers"][0]["resources"] == {"limits": limits, "requests": limits}
    assert out["status"]["qosClass"] == "Guaranteed"


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ({}, "BestEffort"),
        ({"requests": {"cpu": "100m"}}, "Burstable"),
        ({"limits": {"cpu": "1"}}, "Burstable"),
        (
            {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1024Mi"}},
            "Guaranteed",
        ),
        (
            {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}},
            "Burstable",
        ),
        ({"requests": {"cpu": "0"}}, "BestEffort"),
    ],
)
def test_qos_class(resources: dict[str, Any], qos: str) -> None:
    assert qos_class({"containers": [{"name": "c", "resources": resources}]}) == qos


def test_host_network_pods_get_host_ports() -> None:
    out, errs, _ = admit(POD, pod(hostNetwork=True, containers=[container(ports=[{"containerPort": 8080}])]))
    assert errs == []
    assert out["spec"]["containers"][0]["ports"] == [
        {"containerPort": 8080, "protocol": "TCP", "hostPort": 8080}
    ]


# --- validation ---


def test_containers_are_required() -> None:
    assert paths(pod(containers=[])) == ["spec.containers: Required value"]
    body = pod()
    del body["spec"]
    assert paths(body) == ["spec.containers: Required value"]


def test_container_name_image_and_duplicates() -> None:
    spec = {
        "containers": [
            {"name": "Web", "image": "x"},
            {"image": "y"},
            {"name": "db"},
            {"name": "db", "image": "z"},
        ]
    }
    assert paths(pod(**spec)) == [
        "spec.containers[1].name: Required value",
        "spec.containers[0].name: Invalid value",
        "spec.containers[2].image: Required value",
        "spec.containers[3].name: Duplicate value",
    ]


def test_init_container_names_must_differ_from_containers() -> None:
    body = pod(initContainers=[{"name": "web", "image": "busybox"}])
    assert messages(body) == ['spec.initContainers[0].name: Duplicate value: "web"']


def test_container_ports() -> None:
    ports = [
        {"containerPort": 0},
        {"containerPort": 70000, "name": "HTTP"},
        {"containerPort": 80, "name": "http", "protocol": "ICMP"},
        {"containerPort": 81, "name": "http", "hostPort": -1},
    ]
    assert messages(pod(containers=[container(ports=ports)])) == [
        "spec.containers[0].ports[2].protocol: "
        'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        "spec.containers[0].ports[0].containerPort: Required value",
        'spec.containers[0].ports[1].name: Invalid value: "HTTP": '
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        'spec.containers[0].ports[1].name: Invalid value: "HTTP": must contain at least one letter (a-z)',
        "spec.containers[0].ports[1].containerPort: "
        "Invalid value: 70000: must be between 1 and 65535, inclusive",
        'spec.containers[0].ports[3].name: Duplicate value: "http"',
        "spec.containers[0].ports[3].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
    ]


def test_host_network_port_mismatch() -> None:
    body = pod(hostNetwork=True, containers=[container(ports=[{"containerPort": 80, "hostPort": 8080}])])
    assert messages(body) == [
        "spec.containers[0].ports[0].hostPort: "
        "Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"
    ]


def test_host_port_conflicts() -> None:
    spec = {
        "containers": [
            container(ports=[{"containerPort": 80, "hostPort": 8080}]),
            {"name": "b", "image": "x", "ports": [{"containerPort": 81, "hostPort": 8080}]},
        ]
    }
    assert messages(pod(**spec)) == ['spec.containers[1].ports[0].hostPort: Duplicate value: "TCP//8080"']


def test_env() -> None:
    env = [
        {"name": "1BAD"},
        {"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "B", "valueFrom": {}},
        {
            "name": "C",
            "valueFrom": {
                "secretKeyRef": {"name": "s", "key": "k"},
                "configMapKeyRef": {"name": "c", "key": "k"},
            },
        },
        {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "spec.nothing"}}},
        {"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "bad/key"}}},
        {"name": "F", "valueFrom": {"configMapKeyRef": {"name": "c"}}},
    ]
    assert paths(pod(containers=[container(env=env)])) == [
        "spec.containers[0].env[6].valueFrom.configMapKeyRef.key: Required value",
        "spec.containers[0].env[0].name: Invalid value",
        "spec.containers[0].env[1].valueFrom: Invalid value",
        "spec.containers[0].env[2].valueFrom: Invalid value",
        "spec.containers[0].env[3].valueFrom: Invalid value",
        "spec.containers[0].env[4].valueFrom.fieldRef.fieldPath: Unsupported value",
        "spec.containers[0].env[5].valueFrom.secretKeyRef.key: Invalid value",
    ]


def test_env_from_needs_exactly_one_source() -> None:
    env_from = [{"prefix": "X_"}, {"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]
    assert paths(pod(containers=[container(envFrom=env_from)])) == [
        "spec.containers[0].envFrom[0]: Invalid value",
        "spec.containers[0].envFrom[1]: Invalid value",
    ]


def test_resources() -> None:
    resources = {
        "limits": {"cpu": "1", "gpu": "1", "example.com/fpga": "1.5"},
        "requests": {"cpu": "2", "memory": "-1Mi", "example.com/dev": "1"},
    }
    # Pods copy limits into missing requests first, as Kubernetes does: hence the requests[gpu]
    # and requests[example.com/fpga] errors; example.com/dev cannot be requested without a limit.
    assert messages(pod(containers=[container(resources=resources)])) == [
        "spec.containers[0].resources.limits[gpu]: "
        'Invalid value: "gpu": must be a standard resource for containers',
        'spec.containers[0].resources.limits[example.com/fpga]: Invalid value: "1.5": must be an integer',
        "spec.containers[0].resources.requests[memory]: "
        'Invalid value: "-1Mi": must be greater than or equal to 0',
        "spec.containers[0].resources.requests[gpu]: "
        'Invalid value: "gpu": must be a standard resource for containers',
        'spec.containers[0].resources.requests[example.com/fpga]: Invalid value: "1.5": must be an integer',
        "spec.containers[0].resources.requests: "
        'Invalid value: "2": must be less than or equal to cpu limit of 1',
        "spec.containers[0].resources.limits: "
        "Required value: Limit must be set for non overcommitable resources",
    ]


def test_malformed_quantity() -> None:
    assert paths(pod(containers=[container(resources={"limits": {"memory": "1 GB"}})])) == [
        "spec.containers[0].resources.limits[memory]: Invalid value"
    ]


def test_probes() -> None:
    c = container(
        livenessProbe={"successThreshold": 2, "exec": {"command": ["true"]}},
        readinessProbe={},
        startupProbe={"exec": {"command": ["true"]}, "httpGet": {"port": 0}, "initialDelaySeconds": -1},
    )
    assert messages(pod(containers=[c])) == [
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
        "spec.containers[0].startupProbe.httpGet: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].startupProbe.initialDelaySeconds: "
        "Invalid value: -1: must be greater than or equal to 0",
    ]


def test_probe_ports_and_exec_command() -> None:
    c = container(livenessProbe={"httpGet": {"port": "not_a_name"}}, readinessProbe={"exec": {}})
    assert paths(pod(containers=[c])) == [
        "spec.containers[0].livenessProbe.httpGet.port: Invalid value",
        "spec.containers[0].readinessProbe.exec.command: Required value",
    ]


def test_init_containers_cannot_have_probes_unless_sidecars() -> None:
    probe = {"exec": {"command": ["true"]}}
    spec = {
        "initContainers": [
            {"name": "init", "image": "x", "readinessProbe": probe},
            {"name": "side", "image": "x", "restartPolicy": "Always", "readinessProbe": probe},
        ]
    }
    assert messages(pod(**spec)) == [
        "spec.initContainers[0].readinessProbe: "
        "Forbidden: may not be set for init containers without restartPolicy=Always"
    ]


def test_volumes_and_mounts() -> None:
    spec = {
        "volumes": [
            {"name": "a", "hostPath": {"path": "/data", "type": "Nope"}},
            {"name": "a", "secret": {}},
            {"name": "Bad", "emptyDir": {}, "configMap": {"name": "c"}},
            {
                "name": "m",
                "configMap": {"name": "c", "defaultMode": 1000, "items": [{"key": "k", "path": "../x"}]},
            },
        ],
        "containers": [
            container(volumeMounts=[{"name": "missing", "mountPath": "/x"}, {"name": "a", "mountPath": "/x"}])
        ],
    }
    assert paths(pod(**spec)) == [
        "spec.volumes[0].hostPath.type: Unsupported value",
        "spec.volumes[1].secret.secretName: Required value",
        "spec.volumes[1].name: Duplicate value",
        "spec.volumes[2].configMap: Forbidden",
        "spec.volumes[2].name: Invalid value",
        "spec.volumes[3].configMap.defaultMode: Invalid value",
        "spec.volumes[3].configMap.items[0].path: Invalid value",
        "spec.containers[0].volumeMounts[0].name: Not found",
        "spec.containers[0].volumeMounts[1].mountPath: Invalid value",
    ]


def test_restart_and_dns_policies() -> None:
    assert messages(pod(restartPolicy="Sometimes", dnsPolicy="Google")) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": '
        'supported values: "Always", "OnFailure", "Never"',
        'spec.dnsPolicy: Unsupported value: "Google": supported values: '
        '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"',
    ]
    assert messages(pod(dnsPolicy="None")) == [
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
    ]


def test_scheduling_fields() -> None:
    spec = {
        "nodeName": "Node_1",
        "nodeSelector": {"disk": "ssd!"},
        "activeDeadlineSeconds": 0,
        "tolerations": [
            {"operator": "Equal", "value": "x"},
            {"key": "k", "operator": "Exists", "value": "v"},
            {"key": "k", "operator": "Gt"},
            {"key": "k", "tolerationSeconds": 5, "effect": "NoSchedule"},
            {"key": "k", "effect": "Sometimes"},
        ],
    }
    assert paths(pod(**spec)) == [
        "spec.nodeSelector[disk]: Invalid value",
        "spec.nodeName: Invalid value",
        "spec.activeDeadlineSeconds: Invalid value",
        "spec.tolerations[0].operator: Invalid value",
        "spec.tolerations[1].operator: Invalid value",
        "spec.tolerations[2].operator: Unsupported value",
        "spec.tolerations[3].effect: Invalid value",
        "spec.tolerations[4].effect: Unsupported value",
    ]


def test_node_affinity() -> None:
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    affinity = {
        "nodeAffinity": {
            required: {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "zone", "operator": "In"},
                            {"key": "gpu", "operator": "Near"},
                        ]
                    },
                    {"matchFields": [{"key": "metadata.labels", "operator": "In", "values": ["a"]}]},
                ]
            },
            preferred: [
                {
                    "weight": 0,
                    "preference": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
                }
            ],
        }
    }
    base = f"spec.affinity.nodeAffinity.{required}.nodeSelectorTerms"
    assert paths(pod(affinity=affinity)) == [
        f"{base}[0].matchExpressions[0].values: Required value",
        f"{base}[0].matchExpressions[1].operator: Invalid value",
        f"{base}[1].matchFields[0].key: Invalid value",
        f"spec.affinity.nodeAffinity.{preferred}[0].weight: Invalid value",
        f"spec.affinity.nodeAffinity.{preferred}[0].preference.matchExpressions[0].values: Forbidden",
    ]
    assert paths(pod(affinity={"nodeAffinity": {required: {"nodeSelectorTerms": []}}})) == [
        f"{base}: Required value"
    ]


def test_security_context_ids() -> None:
    body = pod(
        securityContext={"runAsUser": -1}, containers=[container(securityContext={"runAsGroup": 2**31})]
    )
    assert paths(body) == [
        "spec.containers[0].securityContext.runAsGroup: Invalid value",
        "spec.securityContext.runAsUser: Invalid value",
    ]


# --- updates ---


def stored(**spec: Any) -> dict[str, Any]:
    out, errs, _ = admit(POD, pod(**spec))
    assert errs == []
    return out


def update_errors(old: dict[str, Any], change: Any) -> list[str]:
    new = copy.deepcopy(old)
    change(new)
    new, errs, _ = admit(POD, new)
    assert errs == []
    assert POD.validate_update is not None
    return [str(e).split("\n")[0] for e in POD.validate_update(new, old)]


def test_image_and_tolerations_may_change() -> None:
    old = stored(
        tolerations=[{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]
    )

    def change(new: dict[str, Any]) -> None:
        new["spec"]["containers"][0]["image"] = "nginx:1.27"
        new["spec"]["tolerations"][0]["tolerationSeconds"] = 10
        new["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
        new["spec"]["activeDeadlineSeconds"] = 100
        new["metadata"]["labels"] = {"x": "y"}

    assert update_errors(old, change) == []


def test_other_spec_changes_are_forbidden() -> None:
    old = stored()
    errs = update_errors(old, lambda new: new["spec"].update(restartPolicy="Never"))
    assert errs == [
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
        "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously negative)"
    ]
    assert update_errors(old, lambda new: new["spec"].update(nodeName="n1"))[0].startswith("spec: Forbidden")


def test_removing_a_toleration_or_raising_the_deadline_is_forbidden() -> None:
    old = stored(activeDeadlineSeconds=50, tolerations=[{"key": "a", "operator": "Exists"}])

    def change(new: dict[str, Any]) -> None:
        new["spec"]["tolerations"] = []
        new["spec"]["activeDeadlineSeconds"] = 60

    assert update_errors(old, change) == [
        "spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value",
        "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds",
    ]


# --- table ---


def cells(obj: dict[str, Any], wide: bool = False) -> dict[str, Any]:
    return {c.name: c.value(obj) for c in POD.columns if wide or c.priority == 0}


def running(name: str = "web", ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "image": "nginx",
        "imageID": "",
        "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
    }


def test_columns_of_a_running_pod() -> None:
    now = datetime.now(UTC)
    obj = stored()
    obj["metadata"]["creationTimestamp"] = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {"phase": "Running", "podIP": "10.1.0.4", "containerStatuses": [running(restarts=2)]}
    status["containerStatuses"][0]["lastState"] = {
        "terminated": {
            "exitCode": 1,
            "finishedAt": (now - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    }
    obj["status"] = status
    obj["spec"]["nodeName"] = "node-1"
    assert [c.name for c in POD.columns] == [
        "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates",
    ]  # fmt: skip
    assert cells(obj, wide=True) == {
        "Name": "p",
        "Ready": "1/1",
        "Status": "Running",
        "Restarts": "2 (3m ago)",
        "Age": "5m",
        "IP": "10.1.0.4",
        "Node": "node-1",
        "Nominated Node": "<none>",
        "Readiness Gates": "<none>",
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"phase": "Pending"}, ("0/1", "Pending")),
        (
            {
                "phase": "Pending",
                "containerStatuses": [
                    {**running(ready=False), "state": {"waiting": {"reason": "ImagePullBackOff"}}}
                ],
            },
            ("0/1", "ImagePullBackOff"),
        ),
        (
            {
                "phase": "Failed",
                "containerStatuses": [{**running(ready=False), "state": {"terminated": {"exitCode": 137}}}],
            },
            ("0/1", "ExitCode:137"),
        ),
        (
            {
                "phase": "Succeeded",
                "containerStatuses": [
                    {**running(ready=False), "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
                ],
            },
            ("0/1", "Completed"),
        ),
        ({"phase": "Failed", "reason": "Evicted"}, ("0/1", "Evicted")),
    ],
)
def test_pod_status_column(status: dict[str, Any], expected: tuple[str, str]) -> None:
    obj = {**stored(), "status": status}
    assert (cells(obj)["Ready"], cells(obj)["Status"]) == expected


def test_init_and_terminating_status() -> None:
    obj = stored(initContainers=[{"name": "init", "image": "busybox"}])
    obj["status"] = {
        "phase": "Pending",
        "initContainerStatuses": [
            {**running("init", ready=False), "state": {"waiting": {"reason": "PodInitializing"}}}
        ],
    }
    assert cells(obj)["Status"] == "Init:0/1"
    obj["status"]["initContainerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    assert cells(obj)["Status"] == "Init:CrashLoopBackOff"
    obj = {**stored(), "status": {"phase": "Running", "containerStatuses": [running()]}}
    obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert cells(obj)["Status"] == "Terminating"


def test_field_selectors() -> None:
    obj = {**stored(nodeName="n1"), "status": {"phase": "Running", "podIP": "10.0.0.1"}}
    values = {name: get(obj) for name, get in POD.field_selectors.items()}
    assert values["spec.nodeName"] == "n1"
    assert values["status.phase"] == "Running"
    assert values["spec.restartPolicy"] == "Always"
    assert values["spec.schedulerName"] == "default-scheduler"
    assert values["status.podIP"] == "10.0.0.1"
    assert values["spec.hostNetwork"] == "false"
