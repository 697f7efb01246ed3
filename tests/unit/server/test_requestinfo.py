"""Requests as authorizers see them, for the paths kubectl and the agents use."""

from __future__ import annotations

import pytest

from shoal.security.identity import UserInfo
from shoal.server.requestinfo import request_attributes

USER = UserInfo("john", ("devs",))


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/default/pods", {}, ("list", "", "pods", "", "default", "")),
        ("GET", "/api/v1/namespaces/default/pods", {"watch": "1"}, ("watch", "", "pods", "", "default", "")),
        ("GET", "/api/v1/watch/namespaces/default/pods", {}, ("watch", "", "pods", "", "default", "")),
        ("GET", "/api/v1/pods", {}, ("list", "", "pods", "", "", "")),
        ("GET", "/api/v1/namespaces/default/pods/web", {}, ("get", "", "pods", "", "default", "web")),
        (
            "POST",
            "/api/v1/namespaces/kube-system/secrets",
            {},
            ("create", "", "secrets", "", "kube-system", ""),
        ),
        (
            "PUT",
            "/apis/apps/v1/namespaces/a/deployments/web",
            {},
            ("update", "apps", "deployments", "", "a", "web"),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/web/scale",
            {},
            ("patch", "apps", "deployments", "scale", "a", "web"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/configmaps",
            {},
            ("deletecollection", "", "configmaps", "", "a", ""),
        ),
        ("DELETE", "/api/v1/namespaces/a/configmaps/c", {}, ("delete", "", "configmaps", "", "a", "c")),
        ("GET", "/api/v1/namespaces/a/pods/p/log", {}, ("get", "", "pods", "log", "a", "p")),
        (
            "GET",
            "/api/v1/namespaces/a/pods/p/exec",
            {"command": "sh"},
            ("create", "", "pods", "exec", "a", "p"),
        ),
        ("POST", "/api/v1/namespaces/a/pods/p/exec", {}, ("create", "", "pods", "exec", "a", "p")),
        ("PATCH", "/api/v1/nodes/n1/status", {}, ("patch", "", "nodes", "status", "", "n1")),
        (
            "GET",
            "/api/v1/namespaces/kube-system",
            {},
            ("get", "", "namespaces", "", "kube-system", "kube-system"),
        ),
        ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", "", "", "")),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods",
            {},
            ("list", "metrics.k8s.io", "pods", "", "a", ""),
        ),
    ],
)
def test_resource_requests(method: str, path: str, query: dict[str, str], expected: tuple[str, ...]) -> None:
    attrs = request_attributes(USER, method, path, query)
    assert (
        attrs.verb,
        attrs.api_group,
        attrs.resource,
        attrs.subresource,
        attrs.namespace,
        attrs.name,
    ) == expected
    assert attrs.is_resource_request and attrs.user == USER and attrs.path == path


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("GET", "/healthz", "get"),
        ("GET", "/api", "get"),
        ("GET", "/apis/apps/v1", "get"),
        ("POST", "/shoal/v1/join", "post"),
    ],
)
def test_non_resource_requests(method: str, path: str, verb: str) -> None:
    attrs = request_attributes(USER, method, path)
    assert (attrs.is_resource_request, attrs.verb, attrs.path) == (False, verb, path)


def test_the_field_selector_is_kept_for_the_node_authorizer() -> None:
    query = {"fieldSelector": "spec.nodeName=n1"}
    assert request_attributes(USER, "GET", "/api/v1/pods", query).field_selector == "spec.nodeName=n1"


def test_a_list_of_one_name_is_authorized_as_that_object() -> None:
    query = {"fieldSelector": "metadata.name=shoal-join-tokens"}
    attrs = request_attributes(USER, "GET", "/api/v1/namespaces/kube-system/secrets", query)
    assert (attrs.verb, attrs.name) == ("list", "shoal-join-tokens")
