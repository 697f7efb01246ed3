"""Deployment, ReplicaSet, DaemonSet and Job: defaults (including the pod template's),
validation paths, immutable fields, scale, columns."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shoal.api.admission import admit
from shoal.api.kind import Kind, Scale
from shoal.api.kinds import DAEMON_SET, DEPLOYMENT, JOB, REPLICA_SET
from shoal.api.kinds.job import generate_selector

TEMPLATE_SPEC_DEFAULTS = {
    "restartPolicy": "Always",
    "dnsPolicy": "ClusterFirst",
    "terminationGracePeriodSeconds": 30,
    "schedulerName": "default-scheduler",
    "securityContext": {},
}


def workload(kind: Kind, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    labels = {"app": "web"} if labels is None else labels
    template = {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
    }
    body: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}}, "template": template}
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {**body, **spec},
    }


def paths(kind: Kind, obj: dict[str, Any]) -> list[str]:
    return [f"{e.path}: {e.type}" for e in admit(kind, obj)[1]]


def messages(kind: Kind, obj: dict[str, Any]) -> list[str]:
    return [str(e) for e in admit(kind, obj)[1]]


def admitted(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    out, errs, unknown = admit(kind, obj)
    assert errs == [] and unknown == []
    return out


def update_errors(kind: Kind, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    assert kind.validate_update is not None
    return [str(e) for e in kind.validate_update(admitted(kind, new), old)]


def cells(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    return {c.name: c.value(obj) for c in kind.columns if c.name != "Age"}


# --- Deployment ---


def test_deployment_defaults() -> None:
    out = admitted(DEPLOYMENT, workload(DEPLOYMENT))
    spec = out["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    pod_spec = spec["template"]["spec"]
    assert {k: pod_spec[k] for k in TEMPLATE_SPEC_DEFAULTS} == TEMPLATE_SPEC_DEFAULTS
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert "enableServiceLinks" not in pod_spec  # a Pod-only default
    assert "status" not in out


def test_deployment_recreate_gets_no_rolling_update() -> None:
    out = admitted(DEPLOYMENT, workload(DEPLOYMENT, strategy={"type": "Recreate"}))
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_deployment_invalid_examples() -> None:
    body = workload(DEPLOYMENT, labels={"app": "other"}, replicas=-1)
    body["spec"]["template"]["spec"] = {"restartPolicy": "OnFailure", "containers": [{"name": "web"}]}
    assert messages(DEPLOYMENT, body) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "spec.template.metadata.labels: Invalid value: {'app': 'other'}: "
        "`selector` does not match template `labels`",
        "spec.template.spec.containers[0].image: Required value",
        'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"',
    ]


def test_deployment_selector_rules() -> None:
    body = workload(DEPLOYMENT)
    del body["spec"]["selector"]
    assert paths(DEPLOYMENT, body) == ["spec.selector: Required value"]
    body = workload(DEPLOYMENT, selector={})
    assert messages(DEPLOYMENT, body) == [
        "spec.selector: Invalid value: {}: empty selector is invalid for deployment"
    ]
    expr = {"matchExpressions": [{"key": "app", "operator": "Near"}, {"key": "tier", "operator": "In"}]}
    assert paths(DEPLOYMENT, workload(DEPLOYMENT, selector=expr)) == [
        "spec.selector.matchExpressions[0].operator: Invalid value",
        "spec.selector.matchExpressions[1].values: Required value",
    ]


def test_deployment_selector_expressions_match_template() -> None:
    selector = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}
    assert paths(DEPLOYMENT, workload(DEPLOYMENT, selector=selector)) == []
    selector = {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}
    assert paths(DEPLOYMENT, workload(DEPLOYMENT, selector=selector)) == [
        "spec.template.metadata.labels: Invalid value"
    ]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ({"type": "BlueGreen"}, ["spec.strategy.type: Unsupported value"]),
        (
            {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}},
            ["spec.strategy.rollingUpdate: Forbidden"],
        ),
        (
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
            ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value"],
        ),
        (
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "ten", "maxUnavailable": "150%"}},
            [
                "spec.strategy.rollingUpdate.maxSurge: Invalid value",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value",
            ],
        ),
    ],
)
def test_deployment_strategy(strategy: dict[str, Any], expected: list[str]) -> None:
    assert paths(DEPLOYMENT, workload(DEPLOYMENT, strategy=strategy)) == expected


def test_deployment_progress_deadline_must_exceed_min_ready() -> None:
    body = workload(DEPLOYMENT, minReadySeconds=600)
    assert messages(DEPLOYMENT, body) == [
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"
    ]


def test_deployment_template_errors_use_template_paths() -> None:
    body = workload(DEPLOYMENT)
    body["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 0}]
    body["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 10
    assert messages(DEPLOYMENT, body) == [
        "spec.template.spec.containers[0].ports[0].containerPort: Required value",
        "spec.template.spec.activeDeadlineSeconds: Forbidden: "
        "activeDeadlineSeconds in ReplicaSet is not Supported",
    ]


def test_deployment_selector_is_immutable_but_replicas_are_not() -> None:
    old = admitted(DEPLOYMENT, workload(DEPLOYMENT))
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    assert update_errors(DEPLOYMENT, old, new) == []
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
    new["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    assert update_errors(DEPLOYMENT, old, new) == [
        "spec.selector: Invalid value: {'matchLabels': {'app': 'web', 'v': '2'}}: field is immutable"
    ]


def test_deployment_scale_and_columns() -> None:
    assert DEPLOYMENT.scale == Scale()
    obj = admitted(DEPLOYMENT, workload(DEPLOYMENT, replicas=3))
    obj["status"] = {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    assert [c.name for c in DEPLOYMENT.columns if c.priority == 0] == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
    ]
    assert cells(DEPLOYMENT, obj) == {
        "Name": "web",
        "Ready": "2/3",
        "Up-to-date": 3,
        "Available": 2,
        "Containers": "web",
        "Images": "nginx:1.25",
        "Selector": "app=web",
    }


# --- ReplicaSet ---


def test_replicaset_defaults_validation_and_columns() -> None:
    out = admitted(REPLICA_SET, workload(REPLICA_SET))
    assert out["spec"]["replicas"] == 1
    assert out["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    body = workload(REPLICA_SET, labels={"app": "x"}, replicas=-2, minReadySeconds=-1)
    assert paths(REPLICA_SET, body) == [
        "spec.replicas: Invalid value",
        "spec.minReadySeconds: Invalid value",
        "spec.template.metadata.labels: Invalid value",
    ]
    assert REPLICA_SET.scale == Scale()
    out["status"] = {"replicas": 1, "readyReplicas": 1}
    assert cells(REPLICA_SET, out) == {
        "Name": "web",
        "Desired": 1,
        "Current": 1,
        "Ready": 1,
        "Containers": "web",
        "Images": "nginx:1.25",
        "Selector": "app=web",
    }


def test_replicaset_selector_is_immutable() -> None:
    old = admitted(REPLICA_SET, workload(REPLICA_SET))
    new = copy.deepcopy(old)
    new["spec"]["selector"]["matchLabels"]["tier"] = "x"
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    assert [e.split(":")[0] for e in update_errors(REPLICA_SET, old, new)] == ["spec.selector"]


# --- DaemonSet ---


def test_daemonset_defaults() -> None:
    out = admitted(DAEMON_SET, workload(DAEMON_SET))
    assert out["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert out["spec"]["revisionHistoryLimit"] == 10
    assert DAEMON_SET.scale is None
    on_delete = admitted(DAEMON_SET, workload(DAEMON_SET, updateStrategy={"type": "OnDelete"}))
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}


@pytest.mark.parametrize(
    ("rolling", "expected"),
    [
        (
            {"maxUnavailable": 0, "maxSurge": 0},
            ["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value"],
        ),
        ({"maxUnavailable": 1, "maxSurge": 1}, ["spec.updateStrategy.rollingUpdate.maxSurge: Invalid value"]),
        (
            {"maxUnavailable": "200%", "maxSurge": 0},
            ["spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value"],
        ),
        ({"maxUnavailable": 0, "maxSurge": "10%"}, []),
    ],
)
def test_daemonset_rolling_update(rolling: dict[str, Any], expected: list[str]) -> None:
    body = workload(DAEMON_SET, updateStrategy={"type": "RollingUpdate", "rollingUpdate": rolling})
    assert paths(DAEMON_SET, body) == expected


def test_daemonset_invalid_examples() -> None:
    body = workload(DAEMON_SET, selector={}, updateStrategy={"type": "Sometimes"})
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert paths(DAEMON_SET, body) == [
        "spec.selector: Invalid value",
        "spec.template.spec.restartPolicy: Unsupported value",
        "spec.updateStrategy: Unsupported value",
    ]
    assert messages(DAEMON_SET, body)[0].endswith("empty selector is invalid for daemonset")


def test_daemonset_host_network_template_may_leave_host_port_unset() -> None:
    body = workload(DAEMON_SET)
    pod_spec = body["spec"]["template"]["spec"]
    pod_spec["hostNetwork"] = True
    pod_spec["containers"][0]["ports"] = [{"containerPort": 9100}]
    assert paths(DAEMON_SET, body) == []
    pod_spec["containers"][0]["ports"] = [{"containerPort": 9100, "hostPort": 9101}]
    assert paths(DAEMON_SET, body) == ["spec.template.spec.containers[0].ports[0].hostPort: Invalid value"]


def test_daemonset_columns() -> None:
    out = admitted(DAEMON_SET, workload(DAEMON_SET))
    out["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "b", "disk": "ssd"}
    out["status"] = {
        "desiredNumberScheduled": 3,
        "currentNumberScheduled": 3,
        "numberReady": 2,
        "numberMisscheduled": 0,
        "updatedNumberScheduled": 3,
        "numberAvailable": 2,
    }
    assert [c.name for c in DAEMON_SET.columns if c.priority == 0] == [
        "Name",
        "Desired",
        "Current",
        "Ready",
        "Up-to-date",
        "Available",
        "Node Selector",
        "Age",
    ]
    row = cells(DAEMON_SET, out)
    assert (row["Desired"], row["Ready"], row["Node Selector"]) == (3, 2, "disk=ssd,zone=b")


# --- Job ---


def job(**spec: Any) -> dict[str, Any]:
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5.34"}]}}
    return {"metadata": {"name": "pi", "namespace": "default"}, "spec": {"template": template, **spec}}


def test_job_defaults() -> None:
    out = admitted(JOB, job())
    spec = out["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert (spec["completionMode"], spec["suspend"]) == ("NonIndexed", False)
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert "selector" not in spec  # generated once the server has assigned a uid


def test_job_completions_stay_unset_when_parallelism_is_given() -> None:
    spec = admitted(JOB, job(parallelism=3))["spec"]
    assert spec["parallelism"] == 3 and "completions" not in spec
    spec = admitted(JOB, job(completions=5))["spec"]
    assert (spec["completions"], spec["parallelism"]) == (5, 1)


def test_job_selector_is_generated_from_the_uid() -> None:
    body = job()
    body["metadata"]["uid"] = "0b5b7c"
    out = admitted(JOB, body)
    assert out["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "0b5b7c"}}
    assert out["spec"]["template"]["metadata"]["labels"] == {
        "job-name": "pi",
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "0b5b7c",
        "batch.kubernetes.io/controller-uid": "0b5b7c",
    }
    # The Job takes its template's labels when it has none of its own.
    assert out["metadata"]["labels"] == out["spec"]["template"]["metadata"]["labels"]
    later = admitted(JOB, job())
    later["metadata"]["uid"] = "u2"
    generate_selector(later)
    assert later["spec"]["selector"]["matchLabels"] == {"batch.kubernetes.io/controller-uid": "u2"}
    assert later["metadata"]["labels"]["controller-uid"] == "u2"


def test_job_copies_template_labels() -> None:
    body = job()
    body["spec"]["template"]["metadata"] = {"labels": {"app": "pi"}}
    assert admitted(JOB, body)["metadata"]["labels"] == {"app": "pi"}


def test_job_restart_policy_must_be_never_or_on_failure() -> None:
    body = job()
    del body["spec"]["template"]["spec"]["restartPolicy"]  # defaults to Always, which a Job refuses
    assert messages(JOB, body) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Always": '
        'supported values: "OnFailure", "Never"'
    ]


def test_job_invalid_examples() -> None:
    body = job(parallelism=-1, backoffLimit=-1, completionMode="Random", manualSelector=True)
    assert paths(JOB, body) == [
        "spec.parallelism: Invalid value",
        "spec.backoffLimit: Invalid value",
        "spec.completionMode: Unsupported value",
        "spec.selector: Required value",
    ]
    assert paths(JOB, job(completionMode="Indexed", parallelism=2)) == ["spec.completions: Required value"]
    manual = job(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    assert paths(JOB, manual) == ["spec.template.metadata.labels: Invalid value"]


def test_job_template_and_selector_are_immutable() -> None:
    base = job()
    base["metadata"]["uid"] = "u1"
    old = admitted(JOB, base)
    new = copy.deepcopy(old)
    new["spec"]["parallelism"] = 4  # parallelism may change
    assert update_errors(JOB, old, new) == []
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5.36"
    new["spec"]["selector"]["matchLabels"]["extra"] = "x"
    new["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    assert [e.split(":")[0] for e in update_errors(JOB, old, new)] == ["spec.selector", "spec.template"]


def test_suspended_job_may_change_scheduling_directives() -> None:
    base = job(suspend=True)
    base["metadata"]["uid"] = "u1"
    old = admitted(JOB, base)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "batch"}
    new["spec"]["template"]["metadata"]["labels"]["queue"] = "q1"
    assert update_errors(JOB, old, new) == []
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5.36"
    assert [e.split(":")[0] for e in update_errors(JOB, old, new)] == ["spec.template"]
    old["status"] = {"startTime": "2024-01-01T00:00:00Z"}  # once started, nothing may change
    del new["spec"]["template"]["spec"]["containers"][0]["image"]
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5.34"
    assert [e.split(":")[0] for e in update_errors(JOB, old, new)] == ["spec.template"]


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        ({}, {}, ("Running", "0/1", "")),
        (
            {},
            {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1},
            ("Complete", "1/1", ""),
        ),
        ({"completions": None, "parallelism": 3}, {}, ("Running", "0/1 of 3", "")),
        ({}, {"conditions": [{"type": "Failed", "status": "True"}]}, ("Failed", "0/1", "")),
        (
            {},
            {"startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:01:30Z", "succeeded": 1},
            ("Running", "1/1", "90s"),
        ),
    ],
)
def test_job_columns(spec: dict[str, Any], status: dict[str, Any], expected: tuple[str, str, str]) -> None:
    obj = admitted(JOB, job())
    obj["spec"].update(spec)
    if obj["spec"].get("completions") is None:
        obj["spec"].pop("completions")
    obj["status"] = status
    row = cells(JOB, obj)
    assert (row["Status"], row["Completions"], row["Duration"]) == expected
    assert JOB.field_selectors["status.successful"](obj) == str(status.get("succeeded", 0))
