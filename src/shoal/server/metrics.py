"""The resource metrics API (``metrics.k8s.io/v1beta1``, what metrics-server serves in
Kubernetes): PodMetrics and NodeMetrics for ``kubectl top`` and, later, autoscaling.

Nothing is stored: each request reads the pods or nodes it is about, asks the agents of their
nodes for their last samples (``GET /stats/summary``, in parallel), and shapes the answer. An
agent that does not answer in time leaves its pods and node out, as metrics-server does with
a node it cannot scrape; a pod or node asked for by name without metrics is a 404.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import httpx
from starlette.requests import Request

from shoal.api import Object
from shoal.api.errors import ApiError, NotFound
from shoal.api.kinds.node import NODE
from shoal.api.kinds.pod import POD
from shoal.security.join import agent_client_context
from shoal.server.logs import agent_target
from shoal.server.resources import ListOptions, Resources

log = logging.getLogger(__name__)

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
SCRAPE_TIMEOUT = 5.0  # seconds per agent


def group() -> dict[str, Any]:
    version = {"groupVersion": GROUP_VERSION, "version": VERSION}
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": [version],
        "preferredVersion": version,
    }


def resource_list() -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {
                "name": "pods",
                "singularName": "",
                "namespaced": True,
                "kind": "PodMetrics",
                "verbs": ["get", "list"],
            },
            {
                "name": "nodes",
                "singularName": "",
                "namespaced": False,
                "kind": "NodeMetrics",
                "verbs": ["get", "list"],
            },
        ],
    }


def _cpu(nano_cores: int) -> str:
    return f"{nano_cores}n"


def _memory(size: int) -> str:
    return f"{size // 1024}Ki"


async def _summaries(resources: Resources, node_names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The agents' last samples, by node name; nodes that do not answer are left out."""
    async with httpx.AsyncClient(
        timeout=SCRAPE_TIMEOUT, verify=agent_client_context(resources) or True
    ) as http:

        async def scrape(name: str) -> tuple[str, dict[str, Any] | None]:
            try:
                agent = agent_target(resources, await resources.get(NODE, None, name))
                response = await http.get(agent.url("/stats/summary"), extensions=agent.extensions)
                response.raise_for_status()
                summary: dict[str, Any] = response.json()
                return name, summary
            except (httpx.HTTPError, ValueError, ApiError) as err:  # one node's trouble is its own
                log.debug("no metrics from node %s: %s", name, err)
                return name, None

        results = await asyncio.gather(*(scrape(name) for name in sorted(set(node_names))))
    return {name: summary for name, summary in results if summary is not None}


def _pod_metrics(pod: Object, stats: dict[str, Any], window: str) -> dict[str, Any]:
    meta = pod["metadata"]
    containers = [
        {
            "name": c["name"],
            "usage": {
                "cpu": _cpu(int(c.get("cpu", {}).get("usageNanoCores", 0))),
                "memory": _memory(int(c.get("memory", {}).get("workingSetBytes", 0))),
            },
        }
        for c in stats.get("containers") or ()
    ]
    timestamp = next((c.get("cpu", {}).get("time") for c in stats.get("containers") or ()), None)
    return {
        "kind": "PodMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace", "default"),
            "creationTimestamp": timestamp,
            "labels": meta.get("labels") or {},
        },
        "timestamp": timestamp,
        "window": window,
        "containers": containers,
    }


async def pod_metrics(resources: Resources, request: Request, namespace: str | None, name: str | None) -> Any:
    """A PodMetrics (``name``) or a PodMetricsList of the namespace (None: every namespace)."""
    if name is not None:
        assert namespace is not None
        pods = [await resources.get(POD, namespace, name)]
    else:
        options = ListOptions(
            label_selector=request.query_params.get("labelSelector", ""),
            field_selector=request.query_params.get("fieldSelector", ""),
        )
        pods = (await resources.list(POD, namespace, options))["items"]
    summaries = await _summaries(
        resources, (p["spec"]["nodeName"] for p in pods if p["spec"].get("nodeName"))
    )
    items = []
    for pod in pods:
        summary = summaries.get(pod["spec"].get("nodeName", ""))
        if summary is None:
            continue
        uid = pod["metadata"]["uid"]
        stats = next((s for s in summary.get("pods") or () if s["podRef"].get("uid") == uid), None)
        if stats is not None:
            items.append(_pod_metrics(pod, stats, summary.get("window", "")))
    if name is not None:
        if not items:
            raise NotFound(f'podmetrics.metrics.k8s.io "{name}" not found')
        return items[0]
    return {"kind": "PodMetricsList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}


async def node_metrics(resources: Resources, request: Request, name: str | None) -> Any:
    """A NodeMetrics (``name``) or the NodeMetricsList of every node."""
    if name is not None:
        nodes = [await resources.get(NODE, None, name)]
    else:
        label_selector = request.query_params.get("labelSelector", "")
        nodes = (await resources.list(NODE, None, ListOptions(label_selector=label_selector)))["items"]
    summaries = await _summaries(resources, (n["metadata"]["name"] for n in nodes))
    items = []
    for node in nodes:
        meta = node["metadata"]
        usage = (summaries.get(meta["name"]) or {}).get("node") or {}
        if "cpu" not in usage:
            continue  # no answer, or a single sample so far
        items.append(
            {
                "kind": "NodeMetrics",
                "apiVersion": GROUP_VERSION,
                "metadata": {
                    "name": meta["name"],
                    "creationTimestamp": usage["cpu"].get("time"),
                    "labels": meta.get("labels") or {},
                },
                "timestamp": usage["cpu"].get("time"),
                "window": summaries[meta["name"]].get("window", ""),
                "usage": {
                    "cpu": _cpu(int(usage["cpu"].get("usageNanoCores", 0))),
                    "memory": _memory(int(usage.get("memory", {}).get("workingSetBytes", 0))),
                },
            }
        )
    if name is not None:
        if not items:
            raise NotFound(f'nodemetrics.metrics.k8s.io "{name}" not found')
        return items[0]
    return {"kind": "NodeMetricsList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}
