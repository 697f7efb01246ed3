"""The official Kubernetes Python client (from PyPI) against a real shoal server process."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


@pytest.fixture(scope="module")
def api_client(shoal_server: Any) -> Any:
    return config.new_client_from_config(config_file=str(shoal_server.kubeconfig))


def deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="busybox:1.36")]),
            ),
        ),
    )


def test_create_list_patch_watch_delete(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    ns = "pyclient"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

    created = apps.create_namespaced_deployment(ns, deployment("api", 2))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.spec.strategy.type == "RollingUpdate"  # a server default

    listed = apps.list_namespaced_deployment(ns, label_selector="app=api")
    assert [d.metadata.name for d in listed.items] == ["api"]
    assert apps.list_namespaced_deployment(ns, label_selector="app=other").items == []

    patched = apps.patch_namespaced_deployment("api", ns, {"spec": {"replicas": 5}})
    assert patched.spec.replicas == 5
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

    scale = apps.read_namespaced_deployment_scale("api", ns)
    assert scale.spec.replicas == 5

    # Watch from the list's resourceVersion sees a ConfigMap created afterwards, in order.
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def watch_config_maps() -> None:
        w = watch.Watch()
        for event in w.stream(
            core.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=20
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 3:
                w.stop()
        done.set()

    watcher = threading.Thread(target=watch_config_maps, daemon=True)
    watcher.start()
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c1"), data={"k": "v"})
    )
    core.patch_namespaced_config_map("c1", ns, {"data": {"k": "w"}})
    core.delete_namespaced_config_map("c1", ns)
    assert done.wait(20), f"watch saw only {seen}"
    assert seen == [("ADDED", "c1"), ("MODIFIED", "c1"), ("DELETED", "c1")]

    apps.delete_namespaced_deployment("api", ns, propagation_policy="Background")
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("api", ns)
    assert err.value.status == 404


def test_stale_resource_version_conflicts(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    cm = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cas"), data={"v": "1"})
    )
    cm.data = {"v": "2"}
    core.replace_namespaced_config_map("cas", "default", cm)  # carries the old resourceVersion: wins once
    cm.data = {"v": "3"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("cas", "default", cm)  # the same, now stale
    assert err.value.status == 409
    assert core.read_namespaced_config_map("cas", "default").data == {"v": "2"}
