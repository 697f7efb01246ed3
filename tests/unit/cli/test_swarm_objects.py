"""``shoal secret|config``: the objects they store, who uses them, and what inspect shows."""

from __future__ import annotations

import base64
import copy
from typing import Any

import click
import pytest

from shoal.api.admission import admit
from shoal.api.kind import Kind
from shoal.api.kinds import CONFIG_MAP, DEPLOYMENT, JOB, POD, REPLICA_SET, SECRET
from shoal.cli.swarm_objects import (
    CONFIG_WHAT,
    SECRET_WHAT,
    build_object,
    in_use_message,
    inspect_document,
    references,
    users_by_object,
)
from shoal.cli.swarm_spec import ServiceSpec, build_service


def admitted(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(obj)
    body["metadata"] = {**body["metadata"], "namespace": "default"}
    out, errors, unknown = admit(kind, body)
    assert [str(e) for e in errors] == [] and unknown == []
    return out


def test_a_secret_holds_bytes_under_its_own_name() -> None:
    content = b"\x00\xffs3cr3t\n"
    obj = build_object(SECRET_WHAT, "db-pass", content, {"team": "a"})
    assert obj == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db-pass", "labels": {"team": "a", "shoal.io/swarm-object": "secret"}},
        "type": "Opaque",
        "data": {"db-pass": base64.b64encode(content).decode()},
    }
    admitted(SECRET, obj)


def test_a_config_is_text_or_binary() -> None:
    text = build_object(CONFIG_WHAT, "nginx.conf", "événement {}\n".encode(), {})
    assert text["kind"] == "ConfigMap" and text["data"] == {"nginx.conf": "événement {}\n"}
    assert "binaryData" not in text
    binary = build_object(CONFIG_WHAT, "logo.png", b"\x89PNG\xff", {})
    assert binary["binaryData"] == {"logo.png": base64.b64encode(b"\x89PNG\xff").decode()}
    assert "data" not in binary
    admitted(CONFIG_MAP, text)
    admitted(CONFIG_MAP, binary)


def test_empty_content_is_refused() -> None:
    with pytest.raises(click.UsageError, match="the content is empty"):
        build_object(SECRET_WHAT, "x", b"", {})


def test_references_cover_volumes_env_and_env_from() -> None:
    pod_spec = {
        "volumes": [
            {"name": "a", "secret": {"secretName": "s-vol"}},
            {"name": "b", "configMap": {"name": "c-vol"}},
            {
                "name": "c",
                "projected": {"sources": [{"secret": {"name": "s-proj"}}, {"configMap": {"name": "c-proj"}}]},
            },
        ],
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s-envfrom"}}]}],
        "containers": [
            {
                "name": "m",
                "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "k"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "c-env", "key": "k"}}},
                    {"name": "C", "value": "plain"},
                ],
                "envFrom": [{"configMapRef": {"name": "c-envfrom"}}],
            }
        ],
    }
    assert sorted(references(pod_spec)) == [
        ("config", "c-env"),
        ("config", "c-envfrom"),
        ("config", "c-proj"),
        ("config", "c-vol"),
        ("secret", "s-env"),
        ("secret", "s-envfrom"),
        ("secret", "s-proj"),
        ("secret", "s-vol"),
    ]


def _service(name: str, **given: Any) -> dict[str, Any]:
    spec = ServiceSpec(
        name=name, image=None, command="sleep 1", args=[], replicas=1, mode="replicated", **given
    )
    obj = build_service(spec)
    obj["metadata"]["uid"] = f"uid-{name}"
    return obj


def test_users_are_services_or_kind_slash_name_and_pods_count_as_their_controller() -> None:
    web = _service("web", secrets=["db-pass"])
    api = _service("api", secrets=["source=db-pass,target=/etc/pw"], configs=["app.conf"])
    batch = _service("batch", secrets=["db-pass"], restart_condition="none")
    replica_set = {
        "metadata": {
            "name": "web-5d8f",
            "labels": {"shoal.io/service": "web"},
            "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}],
        },
        "spec": copy.deepcopy(web["spec"]),
    }
    service_pod = {
        "metadata": {
            "name": "web-5d8f-abcde",
            "labels": {"shoal.io/service": "web"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f", "controller": True}],
        },
        "spec": copy.deepcopy(web["spec"]["template"]["spec"]),
    }
    bare_pod = {
        "metadata": {"name": "debug"},
        "spec": {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "db-pass"}}]}]},
    }
    users = users_by_object(
        [
            (DEPLOYMENT, web),
            (DEPLOYMENT, api),
            (JOB, batch),
            (REPLICA_SET, replica_set),
            (POD, service_pod),
            (POD, bare_pod),
        ]
    )
    assert users == {
        ("secret", "db-pass"): ["pod/debug", "service api", "service batch", "service web"],
        ("config", "app.conf"): ["service api"],
    }
    assert (
        in_use_message(SECRET_WHAT, "db-pass", users[("secret", "db-pass")])
        == 'secret "db-pass" is in use by service api, batch, web, pod/debug'
    )
    message = in_use_message(CONFIG_WHAT, "app.conf", ["service api"])
    assert message == 'config "app.conf" is in use by service api'


def test_inspect_never_shows_a_secrets_data() -> None:
    obj = build_object(SECRET_WHAT, "db-pass", b"hunter2", {"team": "a"})
    obj["metadata"].update(uid="1234", resourceVersion="17", creationTimestamp="2026-01-02T03:04:05Z")
    doc = inspect_document(SECRET_WHAT, obj)
    assert doc == {
        "ID": "1234",
        "Version": {"Index": 17},
        "CreatedAt": "2026-01-02T03:04:05Z",
        "UpdatedAt": "2026-01-02T03:04:05Z",
        "Spec": {"Name": "db-pass", "Labels": {"team": "a"}},
    }
    assert "aHVudGVyMg" not in repr(doc) and "hunter2" not in repr(doc)


def test_inspect_shows_a_configs_data_base64_as_docker_does() -> None:
    for content in (b"listen 80;\n", b"\xff\x00"):
        obj = build_object(CONFIG_WHAT, "app.conf", content, {})
        obj["metadata"].update(uid="u", resourceVersion="3", creationTimestamp="2026-01-02T03:04:05Z")
        assert inspect_document(CONFIG_WHAT, obj)["Spec"]["Data"] == base64.b64encode(content).decode()
    other = {"metadata": {"name": "x"}, "data": {"a": "1", "b": "2"}}  # not made by shoal: no one key
    assert "Data" not in inspect_document(CONFIG_WHAT, other)["Spec"]
