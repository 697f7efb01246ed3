"""Validation of a pod spec's containers: names, images, ports, env, probes, resources, mounts.

Paths, messages and the order of checks follow Kubernetes' core validation, so that errors
read exactly as ``kubectl`` users know them. Every function takes a normalized, defaulted
object: types are already right, optional fields may be absent.
"""

from __future__ import annotations

from typing import Any

from shoal.api.errors import FIELD_NOT_FOUND, FieldError, duplicate, forbidden, invalid, required, unsupported
from shoal.api.kinds.resources import validate_resources
from shoal.api.validation import (
    check,
    config_map_key,
    dns1123_label,
    dns1123_subdomain,
    env_var_name,
    inclusive_range,
    non_negative,
    port_name,
    port_num_or_name,
    port_number,
    qualified_name,
)

Container = dict[str, Any]

_ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
_ENV_RESOURCE_FIELDS = (
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
)
_MAX_ID = 2**31 - 1


def validate_containers(
    spec: dict[str, Any], path: str, volumes: set[str], *, is_pod: bool
) -> list[FieldError]:
    """``containers`` then ``initContainers``: each container, unique names across both,
    and host ports not claimed twice."""
    errors: list[FieldError] = []
    host_network = spec.get("hostNetwork") is True
    containers = spec.get("containers") or []
    if not containers:
        errors.append(required(f"{path}.containers"))
    names: set[str] = set()
    groups = (("containers", containers, False), ("initContainers", spec.get("initContainers") or [], True))
    for field, items, init in groups:
        for i, container in enumerate(items):
            item_path = f"{path}.{field}[{i}]"
            errors += validate_container(container, item_path, volumes, init=init)
            name = container.get("name", "")
            if name and name in names:
                errors.append(duplicate(f"{item_path}.name", name))
            names.add(name)
            if host_network:
                errors += _host_network_ports(container, item_path, is_pod=is_pod)
    errors += _unique_host_ports(spec, path)
    return errors


def validate_container(c: Container, path: str, volumes: set[str], *, init: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    name = c.get("name", "")
    errors += check(f"{path}.name", name, dns1123_label) if name else [required(f"{path}.name")]
    image = c.get("image", "")
    if not image:
        errors.append(required(f"{path}.image"))
    elif image != image.strip():
        errors.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    restartable = c.get("restartPolicy") == "Always"
    if "restartPolicy" in c:
        if not init:
            errors.append(forbidden(f"{path}.restartPolicy", "may not be set for non-init containers"))
        elif not restartable:
            errors.append(unsupported(f"{path}.restartPolicy", c["restartPolicy"], ["Always"]))
    errors += _ports(c.get("ports") or [], f"{path}.ports")
    errors += _env(c.get("env") or [], f"{path}.env")
    errors += _env_from(c.get("envFrom") or [], f"{path}.envFrom")
    errors += _volume_mounts(c.get("volumeMounts") or [], f"{path}.volumeMounts", volumes)
    errors += validate_resources(c.get("resources") or {}, f"{path}.resources")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe not in c:
            continue
        if init and not restartable:
            errors.append(
                forbidden(
                    f"{path}.{probe}", "may not be set for init containers without restartPolicy=Always"
                )
            )
            continue
        errors += _probe(c[probe], f"{path}.{probe}")
        if probe != "readinessProbe" and c[probe].get("successThreshold", 1) != 1:
            errors.append(
                invalid(f"{path}.{probe}.successThreshold", c[probe]["successThreshold"], "must be 1")
            )
    if "lifecycle" in c:
        if init and not restartable:
            errors.append(
                forbidden(
                    f"{path}.lifecycle", "may not be set for init containers without restartPolicy=Always"
                )
            )
        else:
            for hook in ("postStart", "preStop"):
                if hook in c["lifecycle"]:
                    errors += _handler(c["lifecycle"][hook], f"{path}.lifecycle.{hook}", _HOOK_HANDLERS)
    errors += _security_context(c.get("securityContext") or {}, f"{path}.securityContext")
    return errors


def _ports(ports: list[dict[str, Any]], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        item = f"{path}[{i}]"
        name = port.get("name", "")
        if name:
            problems = port_name(name)
            errors += [invalid(f"{item}.name", name, p) for p in problems]
            if not problems and name in names:
                errors.append(duplicate(f"{item}.name", name))
            names.add(name)
        if port.get("containerPort", 0) == 0:
            errors.append(required(f"{item}.containerPort"))
        else:
            errors += [
                invalid(f"{item}.containerPort", port["containerPort"], p)
                for p in port_number(port["containerPort"])
            ]
        if port.get("hostPort", 0) != 0:
            errors += [
                invalid(f"{item}.hostPort", port["hostPort"], p) for p in port_number(port["hostPort"])
            ]
    return errors


def _host_network_ports(c: Container, path: str, *, is_pod: bool) -> list[FieldError]:
    # A template may leave hostPort 0: the Pod made from it gets hostPort = containerPort.
    errors = []
    for i, port in enumerate(c.get("ports") or []):
        host, container = port.get("hostPort", 0), port.get("containerPort", 0)
        if (is_pod or host != 0) and host != container:
            detail = "must match `containerPort` when `hostNetwork` is true"
            errors.append(invalid(f"{path}.ports[{i}].hostPort", host, detail))
    return errors


def _unique_host_ports(spec: dict[str, Any], path: str) -> list[FieldError]:
    errors, seen = [], set()
    for field in ("containers", "initContainers"):
        for i, c in enumerate(spec.get(field) or []):
            for j, port in enumerate(c.get("ports") or []):
                if not port.get("hostPort"):
                    continue
                key = f"{port.get('protocol', 'TCP')}/{port.get('hostIP', '')}/{port['hostPort']}"
                if key in seen:
                    errors.append(duplicate(f"{path}.{field}[{i}].ports[{j}].hostPort", key))
                seen.add(key)
    return errors


def _env(env: list[dict[str, Any]], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, var in enumerate(env):
        item = f"{path}[{i}]"
        name = var.get("name", "")
        errors += check(f"{item}.name", name, env_var_name) if name else [required(f"{item}.name")]
        if "valueFrom" in var:
            errors += _env_value_from(var, f"{item}.valueFrom")
    return errors


def _env_value_from(var: dict[str, Any], path: str) -> list[FieldError]:
    source = var["valueFrom"]
    errors: list[FieldError] = []
    if "fieldRef" in source:
        errors += _field_ref(source["fieldRef"], f"{path}.fieldRef")
    if "resourceFieldRef" in source:
        ref, ref_path = source["resourceFieldRef"], f"{path}.resourceFieldRef"
        resource = ref.get("resource", "")
        if not resource:
            errors.append(required(f"{ref_path}.resource"))
        elif resource not in _ENV_RESOURCE_FIELDS:
            errors.append(unsupported(f"{ref_path}.resource", resource, list(_ENV_RESOURCE_FIELDS)))
    for ref_name in ("configMapKeyRef", "secretKeyRef"):
        if ref_name in source:
            errors += _key_selector(source[ref_name], f"{path}.{ref_name}")
    count = sum(
        1
        for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef")
        if k in source
    )
    if count == 0:
        detail = "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
        errors.append(invalid(path, "", detail))
    elif var.get("value"):
        errors.append(invalid(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        errors.append(invalid(path, "", "may not have more than one field specified at a time"))
    return errors


def _field_ref(ref: dict[str, Any], path: str) -> list[FieldError]:
    field_path = ref.get("fieldPath", "")
    if not ref.get("apiVersion"):
        return [required(f"{path}.apiVersion")]
    if not field_path:
        return [required(f"{path}.fieldPath")]
    base, bracket, subscript = field_path.partition("[")
    if bracket:
        if base not in ("metadata.labels", "metadata.annotations"):
            return [invalid(f"{path}.fieldPath", base, "does not support subscript")]
        key = subscript.rstrip("]").strip("'")
        return check(f"{path}.fieldPath", key, qualified_name)
    if field_path not in _ENV_FIELD_PATHS:
        return [unsupported(f"{path}.fieldPath", field_path, list(_ENV_FIELD_PATHS))]
    return []


def _key_selector(ref: dict[str, Any], path: str) -> list[FieldError]:
    errors = check(f"{path}.name", ref.get("name", ""), dns1123_subdomain)
    key = ref.get("key", "")
    errors += check(f"{path}.key", key, config_map_key) if key else [required(f"{path}.key")]
    return errors


def _env_from(sources: list[dict[str, Any]], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, source in enumerate(sources):
        item = f"{path}[{i}]"
        if source.get("prefix"):
            errors += check(f"{item}.prefix", source["prefix"], env_var_name)
        refs = [r for r in ("configMapRef", "secretRef") if r in source]
        for ref in refs:
            errors += check(f"{item}.{ref}.name", source[ref].get("name", ""), dns1123_subdomain)
        if not refs:
            errors.append(invalid(item, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif len(refs) > 1:
            errors.append(invalid(item, "", "may not have more than one field specified at a time"))
    return errors


def _volume_mounts(mounts: list[dict[str, Any]], path: str, volumes: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, mount in enumerate(mounts):
        item = f"{path}[{i}]"
        name, mount_path = mount.get("name", ""), mount.get("mountPath", "")
        if not name:
            errors.append(required(f"{item}.name"))
        if name not in volumes:
            errors.append(FieldError(f"{item}.name", FIELD_NOT_FOUND, "", name, True))
        if not mount_path:
            errors.append(required(f"{item}.mountPath"))
        elif mount_path in seen:
            errors.append(invalid(f"{item}.mountPath", mount_path, "must be unique"))
        seen.add(mount_path)
        sub_path = mount.get("subPath", "")
        if sub_path.startswith("/"):
            errors.append(invalid(f"{item}.subPath", sub_path, "must be a relative path"))
        elif ".." in sub_path.split("/"):
            errors.append(invalid(f"{item}.subPath", sub_path, "must not contain '..'"))
    return errors


# Handler kinds in the order Kubernetes checks them (the first one wins, later ones are
# reported as extra).
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_HOOK_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")


def _probe(probe: dict[str, Any], path: str) -> list[FieldError]:
    errors = _handler(probe, path, _PROBE_HANDLERS)
    for field in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        errors += non_negative(f"{path}.{field}", probe.get(field))
    grace = probe.get("terminationGracePeriodSeconds")
    if grace is not None and grace <= 0:
        errors.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0"))
    return errors


def _handler(handler: dict[str, Any], path: str, kinds: tuple[str, ...]) -> list[FieldError]:
    errors: list[FieldError] = []
    found = 0
    for kind in kinds:
        if kind not in handler:
            continue
        if found:
            errors.append(forbidden(f"{path}.{kind}", "may not specify more than 1 handler type"))
            continue
        found += 1
        action, action_path = handler[kind], f"{path}.{kind}"
        if kind == "exec" and not action.get("command"):
            errors.append(required(f"{action_path}.command"))
        elif kind in ("httpGet", "tcpSocket") and "port" in action:
            errors += port_num_or_name(f"{action_path}.port", action["port"])
        elif kind == "grpc" and "port" in action:
            errors += [invalid(f"{action_path}.port", action["port"], p) for p in port_number(action["port"])]
        elif kind == "sleep":
            errors += non_negative(f"{action_path}.seconds", action.get("seconds"))
        if kind == "httpGet":
            for j, header in enumerate(action.get("httpHeaders") or []):
                if not _is_header_name(header.get("name", "")):
                    detail = (
                        "a valid HTTP header must consist of alphanumeric characters or '-' "
                        "(e.g. 'X-Header-Name')"
                    )
                    errors.append(
                        invalid(f"{action_path}.httpHeaders[{j}].name", header.get("name", ""), detail)
                    )
    if not found:
        errors.append(required(path, "must specify a handler type"))
    return errors


def _is_header_name(name: str) -> bool:
    return bool(name) and all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in name)


def _security_context(ctx: dict[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for field in ("runAsUser", "runAsGroup"):
        if field in ctx:
            errors += inclusive_range(f"{path}.{field}", ctx[field], 0, _MAX_ID)
    if ctx.get("privileged") is True and ctx.get("allowPrivilegeEscalation") is False:
        detail = "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
        errors.append(invalid(path, "", detail))
    return errors
