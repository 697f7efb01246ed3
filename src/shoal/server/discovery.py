"""Discovery documents (``/api``, ``/apis``, resource lists, ``/version``): how kubectl and
the client libraries learn which kinds the server has."""

from __future__ import annotations

from typing import Any

from shoal import __version__
from shoal.api import Registry

KUBERNETES_COMPAT = ("1", "32")


def version() -> dict[str, Any]:
    import platform
    import sys

    major, minor = KUBERNETES_COMPAT
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{major}.{minor}.0+shoal-{__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
        "compiler": "cpython",
        "platform": f"{platform.system().lower()}/{platform.machine()}",
    }


def core_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def group_list(registry: Registry) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [group(registry, name) for name in registry.groups() if name],
    }


def group(registry: Registry, name: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in registry.groups().get(name, [])]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": versions,
        "preferredVersion": versions[0] if versions else {},
    }


def resource_list(registry: Registry, group_name: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for k in registry.kinds:
        if k.group != group_name or k.version != version:
            continue
        entry: dict[str, Any] = {
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": k.verbs,
        }
        if k.short_names:
            entry["shortNames"] = list(k.short_names)
        if k.categories:
            entry["categories"] = list(k.categories)
        resources.append(entry)
        if k.has_status:
            resources.append(
                {
                    "name": f"{k.plural}/status",
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "kind": k.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if k.bindable:
            resources.append(
                {
                    "name": f"{k.plural}/binding",
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "kind": "Binding",
                    "verbs": ["create"],
                }
            )
        if (k.group, k.plural) == ("", "pods"):
            resources.append(
                {
                    "name": "pods/log",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
            resources.append(
                {
                    "name": "pods/exec",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "PodExecOptions",
                    "verbs": ["create", "get"],
                }
            )
        if k.scale is not None:
            resources.append(
                {
                    "name": f"{k.plural}/scale",
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
    gv = f"{group_name}/{version}" if group_name else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
