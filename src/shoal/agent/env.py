"""A container's environment as the kubelet builds it: ``envFrom``, then ``env`` in order, with
``valueFrom`` read from ConfigMaps, Secrets and the Pod's own fields, and ``$(VAR)`` references
expanded in values, command and args.

The runtime only ever sees plain strings (``ContainerSpec``); everything that needs the API or
the Pod is done here. A source that cannot be read (missing object or key, manager
unreachable, unsupported reference) raises ``ConfigError``, which the pod shows as
``CreateContainerConfigError`` until a retry succeeds.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from shoal.agent.runtimes import ContainerSpec
from shoal.api import Kind, Object
from shoal.api.errors import ApiError, NotFound
from shoal.api.kinds.configmap import CONFIG_MAP
from shoal.api.kinds.secret import SECRET
from shoal.client._interface import Client

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigError(Exception):
    """The container's configuration cannot be built; the message is what the status shows."""


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: a known variable is replaced, an unknown one is left as
    written, and ``$$`` escapes a dollar sign."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, value)


async def read_source(client: Client, kind: Kind, namespace: str, name: str, optional: bool) -> Object | None:
    """The ConfigMap or Secret a container's env or volume names; None when it is missing and
    optional. Raises ConfigError (missing, or the manager cannot be read)."""
    try:
        return await client.get(kind, name, namespace)
    except NotFound:
        if optional:
            return None
        raise ConfigError(f'{kind.singular} "{name}" not found') from None
    except ApiError as err:
        raise ConfigError(f"cannot read {kind.singular} {namespace}/{name}: {err}") from None


class EnvResolver:
    """Builds ``ContainerSpec``s for the pods of one node. ``pod_ip`` is what ``status.podIP``
    resolves to (the node's address in host networking mode)."""

    def __init__(self, client: Client, pod_ip: str, host_ip: str | None = None) -> None:
        self.client = client
        self.pod_ip = pod_ip
        self.host_ip = host_ip or pod_ip

    async def spec(
        self, pod: Object, container: Mapping[str, Any], *, pod_ip: str | None = None
    ) -> ContainerSpec:
        """``pod_ip``: the pod's own address (its sandbox's), when it has one. Raises ConfigError."""
        env = await self.environment(pod, container, pod_ip=pod_ip)
        values = dict(env)
        command = tuple(expand(part, values) for part in container.get("command") or ())
        args = tuple(expand(part, values) for part in container.get("args") or ())
        # Image, pull policy, limits and the rest are read as the runtime contract reads them.
        plain = ContainerSpec.from_container({**container, "env": []})
        return replace(plain, command=command, args=args, env=tuple(env))

    async def environment(
        self, pod: Object, container: Mapping[str, Any], *, pod_ip: str | None = None
    ) -> list[tuple[str, str]]:
        namespace = pod["metadata"].get("namespace") or "default"
        values: dict[str, str] = {}  # later entries win, and keep the first one's place
        for source in container.get("envFrom") or ():
            prefix = source.get("prefix") or ""
            if "configMapRef" in source:
                ref, kind = source["configMapRef"], CONFIG_MAP
            elif "secretRef" in source:
                ref, kind = source["secretRef"], SECRET
            else:
                raise ConfigError(f"envFrom entry {source!r} has no configMapRef or secretRef")
            data = await self._data(kind, namespace, ref.get("name", ""), bool(ref.get("optional")))
            for key, text in (data or {}).items():
                values[prefix + key] = text
        for item in container.get("env") or ():
            name = item["name"]
            if "valueFrom" in item:
                source = item["valueFrom"]
                value: str | None = await self._value_from(pod, namespace, name, source, pod_ip)
                if value is None:
                    continue  # an optional reference that is missing: no variable, as in Kubernetes
                values[name] = value
            else:
                # Expanded against what is defined so far, as the kubelet does.
                values[name] = expand(item.get("value", ""), values)
        return list(values.items())

    async def _value_from(
        self, pod: Object, namespace: str, name: str, source: Mapping[str, Any], pod_ip: str | None
    ) -> str | None:
        if "fieldRef" in source:
            return self._field(pod, name, source["fieldRef"].get("fieldPath", ""), pod_ip or self.pod_ip)
        for key, kind in (("configMapKeyRef", CONFIG_MAP), ("secretKeyRef", SECRET)):
            if key in source:
                ref = source[key]
                optional = bool(ref.get("optional"))
                data = await self._data(kind, namespace, ref.get("name", ""), optional)
                if data is None:
                    return None
                if ref.get("key") not in data:
                    if optional:
                        return None
                    raise ConfigError(
                        f"couldn't find key {ref.get('key')} in {kind.kind} {namespace}/{ref.get('name')}"
                    )
                return data[ref["key"]]
        kinds = ", ".join(sorted(source)) or "nothing"
        raise ConfigError(f"env {name!r}: valueFrom {kinds} is not supported by the shoal agent yet")

    def _field(self, pod: Object, name: str, path: str, pod_ip: str) -> str:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        fields = {
            "metadata.name": meta.get("name", ""),
            "metadata.namespace": meta.get("namespace", "default"),
            "metadata.uid": meta.get("uid", ""),
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.podIP": pod_ip,
            "status.hostIP": self.host_ip,
        }
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
        if match:
            return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
        if path not in fields:
            raise ConfigError(f"env {name!r}: fieldRef {path!r} is not supported")
        return str(fields[path])

    async def _data(self, kind: Kind, namespace: str, name: str, optional: bool) -> dict[str, str] | None:
        """The string data of a ConfigMap or Secret (Secrets decoded from base64); None when it
        is missing and optional."""
        obj = await read_source(self.client, kind, namespace, name, optional)
        if obj is None:
            return None
        data: dict[str, str] = {}
        if kind is SECRET:
            for key, value in (obj.get("data") or {}).items():
                try:
                    data[key] = base64.b64decode(value, validate=True).decode()
                except (binascii.Error, UnicodeDecodeError) as err:
                    raise ConfigError(f"secret {namespace}/{name} key {key}: {err}") from None
            data.update(obj.get("stringData") or {})
        else:
            data.update(obj.get("data") or {})
            # binaryData is not text: it cannot become an environment variable.
        return data
