"""Validation of a whole pod spec (volumes, scheduling, DNS, security) and of pod templates.

``validate_pod_spec`` is the one entry point for Pods and every controller's template; paths
are passed in (``spec`` or ``spec.template.spec``) so that errors name the field the user
wrote.
"""

from __future__ import annotations

from typing import Any

from shoal.api.errors import FieldError, duplicate, forbidden, invalid, required, unsupported
from shoal.api.kinds.containervalidation import validate_containers
from shoal.api.kinds.resources import validate_resources
from shoal.api.kinds.scheduling import TAINT_EFFECTS
from shoal.api.kinds.volume import SOURCES
from shoal.api.selectors import label_selector_errors

# ``annotations`` clashes with the __future__ import; imported under another name.
from shoal.api.validation import annotations as annotation_errors
from shoal.api.validation import (
    check,
    config_map_key,
    dns1123_label,
    dns1123_subdomain,
    inclusive_range,
    ip_address,
    label_value,
    labels,
    non_negative,
    qualified_name,
)

_MAX_INT32 = 2**31 - 1
_FILE_MODE_DETAIL = "must be a number between 0 and 0777 (octal), both inclusive"


def validate_pod_spec(spec: dict[str, Any], path: str, *, is_pod: bool) -> list[FieldError]:
    volumes, errors = _volumes(spec.get("volumes") or [], f"{path}.volumes")
    errors += validate_containers(spec, path, volumes, is_pod=is_pod)
    errors += labels(f"{path}.nodeSelector", spec.get("nodeSelector"))
    for field, rule in (
        ("nodeName", dns1123_subdomain),
        ("serviceAccountName", dns1123_subdomain),
        ("hostname", dns1123_label),
        ("subdomain", dns1123_label),
        ("priorityClassName", dns1123_subdomain),
    ):
        if spec.get(field):
            errors += check(f"{path}.{field}", spec[field], rule)
    if "activeDeadlineSeconds" in spec:
        errors += inclusive_range(
            f"{path}.activeDeadlineSeconds", spec["activeDeadlineSeconds"], 1, _MAX_INT32
        )
    errors += non_negative(f"{path}.terminationGracePeriodSeconds", spec.get("terminationGracePeriodSeconds"))
    errors += _dns(spec, path)
    errors += _pod_security_context(spec.get("securityContext") or {}, f"{path}.securityContext")
    errors += validate_tolerations(spec.get("tolerations") or [], f"{path}.tolerations")
    errors += _affinity(spec.get("affinity") or {}, f"{path}.affinity")
    errors += _topology_spread(
        spec.get("topologySpreadConstraints") or [], f"{path}.topologySpreadConstraints"
    )
    if "resources" in spec:
        errors += validate_resources(spec["resources"], f"{path}.resources")
    return errors


def validate_pod_template(template: dict[str, Any], path: str) -> list[FieldError]:
    """A controller's pod template: its labels and annotations, and its spec (where a
    hostNetwork port may leave hostPort unset, and ephemeral containers are not allowed)."""
    meta = template.get("metadata") or {}
    errors = labels(f"{path}.metadata.labels", meta.get("labels"))
    errors += annotation_errors(f"{path}.metadata.annotations", meta.get("annotations"))
    spec = template.get("spec") or {}
    errors += validate_pod_spec(spec, f"{path}.spec", is_pod=False)
    if spec.get("ephemeralContainers"):
        errors.append(
            forbidden(f"{path}.spec.ephemeralContainers", "ephemeral containers not allowed in pod template")
        )
    return errors


def _volumes(volumes: list[dict[str, Any]], path: str) -> tuple[set[str], list[FieldError]]:
    names: set[str] = set()
    errors: list[FieldError] = []
    for i, volume in enumerate(volumes):
        item = f"{path}[{i}]"
        errors += _volume_source(volume, item)
        name = volume.get("name", "")
        errors += check(f"{item}.name", name, dns1123_label) if name else [required(f"{item}.name")]
        if name in names:
            errors.append(duplicate(f"{item}.name", name))
        names.add(name)
    return names, errors


def _volume_source(volume: dict[str, Any], path: str) -> list[FieldError]:
    given = [source for source in SOURCES if source in volume]
    if not given:
        return [required(path, "must specify a volume type")]
    errors = [forbidden(f"{path}.{extra}", "may not specify more than 1 volume type") for extra in given[1:]]
    kind = given[0]
    source, source_path = volume[kind], f"{path}.{kind}"
    if not isinstance(source, dict):
        return errors  # a Raw source we do not interpret
    if kind == "hostPath":
        host_path = source.get("path", "")
        if not host_path:
            errors.append(required(f"{source_path}.path"))
        elif ".." in host_path.split("/"):
            errors.append(invalid(f"{source_path}.path", host_path, "must not contain '..'"))
    elif kind == "secret" and not source.get("secretName"):
        errors.append(required(f"{source_path}.secretName"))
    elif kind == "configMap" and not source.get("name"):
        errors.append(required(f"{source_path}.name"))
    elif kind == "persistentVolumeClaim" and not source.get("claimName"):
        errors.append(required(f"{source_path}.claimName"))
    elif kind == "emptyDir" and str(source.get("sizeLimit", "")).startswith("-"):
        errors.append(
            forbidden(f"{source_path}.sizeLimit", "SizeLimit field must be a valid resource quantity")
        )
    if kind in ("secret", "configMap", "downwardAPI", "projected") and "defaultMode" in source:
        mode = source["defaultMode"]
        if not 0 <= mode <= 0o777:
            errors.append(invalid(f"{source_path}.defaultMode", mode, _FILE_MODE_DETAIL))
    if kind in ("secret", "configMap"):
        for j, item in enumerate(source.get("items") or []):
            errors += _key_to_path(item, f"{source_path}.items[{j}]")
    return errors


def _key_to_path(item: dict[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    key, file_path = item.get("key", ""), item.get("path", "")
    errors += check(f"{path}.key", key, config_map_key) if key else [required(f"{path}.key")]
    if not file_path:
        errors.append(required(f"{path}.path"))
    elif file_path.startswith("/"):
        errors.append(invalid(f"{path}.path", file_path, "must be a relative path"))
    elif ".." in file_path.split("/"):
        errors.append(invalid(f"{path}.path", file_path, "must not contain '..'"))
    mode = item.get("mode")
    if mode is not None and not 0 <= mode <= 0o777:
        errors.append(invalid(f"{path}.mode", mode, _FILE_MODE_DETAIL))
    return errors


def _dns(spec: dict[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    config = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if config is None:
            errors.append(required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"))
        elif not config.get("nameservers"):
            detail = "must provide at least one DNS nameserver when `dnsPolicy` is None"
            errors.append(required(f"{path}.dnsConfig.nameservers", detail))
    if config:
        servers = config.get("nameservers") or []
        if len(servers) > 3:
            errors.append(
                invalid(f"{path}.dnsConfig.nameservers", servers, "must not have more than 3 nameservers")
            )
        for i, server in enumerate(servers):
            errors += check(f"{path}.dnsConfig.nameservers[{i}]", server, ip_address)
        searches = config.get("searches") or []
        if len(searches) > 32:
            errors.append(
                invalid(f"{path}.dnsConfig.searches", searches, "must not have more than 32 search paths")
            )
    return errors


def _pod_security_context(ctx: dict[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for field in ("runAsUser", "runAsGroup", "fsGroup"):
        if field in ctx:
            errors += inclusive_range(f"{path}.{field}", ctx[field], 0, _MAX_INT32)
    for i, gid in enumerate(ctx.get("supplementalGroups") or []):
        errors += inclusive_range(f"{path}.supplementalGroups[{i}]", gid, 0, _MAX_INT32)
    return errors


def validate_tolerations(tolerations: list[dict[str, Any]], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, tol in enumerate(tolerations):
        item = f"{path}[{i}]"
        key, operator, value, effect = (tol.get(f, "") for f in ("key", "operator", "value", "effect"))
        if key:
            errors += check(f"{item}.key", key, qualified_name)
        if not key and operator != "Exists":
            detail = (
                'operator must be Exists when `key` is empty, which means "match all values and all keys"'
            )
            errors.append(invalid(f"{item}.operator", operator, detail))
        if "tolerationSeconds" in tol and effect != "NoExecute":
            detail = "effect must be 'NoExecute' when `tolerationSeconds` is set"
            errors.append(invalid(f"{item}.effect", effect, detail))
        if operator in ("Equal", ""):
            problems = label_value(value)
            if problems:
                errors.append(invalid(f"{item}.operator", value, ";".join(problems)))
        elif operator == "Exists":
            if value:
                errors.append(
                    invalid(f"{item}.operator", tol, "value must be empty when `operator` is 'Exists'")
                )
        else:
            errors.append(unsupported(f"{item}.operator", operator, ["Equal", "Exists"]))
        if effect and effect not in TAINT_EFFECTS:
            errors.append(unsupported(f"{item}.effect", effect, list(TAINT_EFFECTS)))
    return errors


def _affinity(affinity: dict[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    node = affinity.get("nodeAffinity") or {}
    req_key, pref_key = (
        "requiredDuringSchedulingIgnoredDuringExecution",
        "preferredDuringSchedulingIgnoredDuringExecution",
    )
    if req_key in node:
        terms_path = f"{path}.nodeAffinity.{req_key}.nodeSelectorTerms"
        terms = node[req_key].get("nodeSelectorTerms") or []
        if not terms:
            errors.append(required(terms_path, "must have at least one node selector term"))
        for i, term in enumerate(terms):
            errors += validate_node_selector_term(term, f"{terms_path}[{i}]")
    for i, pref in enumerate(node.get(pref_key) or []):
        item = f"{path}.nodeAffinity.{pref_key}[{i}]"
        errors += _weight(pref, item)
        errors += validate_node_selector_term(pref.get("preference") or {}, f"{item}.preference")
    for kind in ("podAffinity", "podAntiAffinity"):
        pod = affinity.get(kind) or {}
        for i, term in enumerate(pod.get(req_key) or []):
            errors += _pod_affinity_term(term, f"{path}.{kind}.{req_key}[{i}]")
        for i, weighted in enumerate(pod.get(pref_key) or []):
            item = f"{path}.{kind}.{pref_key}[{i}]"
            errors += _weight(weighted, item)
            errors += _pod_affinity_term(weighted.get("podAffinityTerm") or {}, f"{item}.podAffinityTerm")
    return errors


def _weight(term: dict[str, Any], path: str) -> list[FieldError]:
    weight = term.get("weight", 0)
    if 1 <= weight <= 100:
        return []
    return [invalid(f"{path}.weight", weight, "must be in the range 1-100")]


def validate_node_selector_term(term: dict[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for j, req in enumerate(term.get("matchExpressions") or []):
        item = f"{path}.matchExpressions[{j}]"
        operator, values = req.get("operator", ""), req.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                errors.append(
                    required(f"{item}.values", "must be specified when `operator` is 'In' or 'NotIn'")
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                errors.append(forbidden(f"{item}.values", detail))
        elif operator in ("Gt", "Lt"):
            if len(values) != 1:
                detail = "must be specified single value when `operator` is 'Lt' or 'Gt'"
                errors.append(required(f"{item}.values", detail))
        else:
            errors.append(invalid(f"{item}.operator", operator, "not a valid selector operator"))
        errors += check(f"{item}.key", req.get("key", ""), qualified_name)
    for j, req in enumerate(term.get("matchFields") or []):
        item = f"{path}.matchFields[{j}]"
        operator, values = req.get("operator", ""), req.get("values") or []
        if operator in ("In", "NotIn"):
            if len(values) != 1:
                detail = "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"
                errors.append(required(f"{item}.values", detail))
        else:
            errors.append(invalid(f"{item}.operator", operator, "not a valid selector operator"))
        if req.get("key") != "metadata.name":
            errors.append(invalid(f"{item}.key", req.get("key", ""), "not a valid field selector key"))
        else:
            for k, value in enumerate(values):
                errors += check(f"{item}.values[{k}]", value, dns1123_subdomain)
    return errors


def _pod_affinity_term(term: dict[str, Any], path: str) -> list[FieldError]:
    errors = label_selector_errors(term.get("labelSelector"), f"{path}.labelSelector")
    errors += label_selector_errors(term.get("namespaceSelector"), f"{path}.namespaceSelector")
    for i, namespace in enumerate(term.get("namespaces") or []):
        errors += check(f"{path}.namespaces[{i}]", namespace, dns1123_label)
    key = term.get("topologyKey", "")
    errors += (
        check(f"{path}.topologyKey", key, qualified_name)
        if key
        else [required(f"{path}.topologyKey", "can not be empty")]
    )
    return errors


def _topology_spread(constraints: list[dict[str, Any]], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, constraint in enumerate(constraints):
        item = f"{path}[{i}]"
        skew = constraint.get("maxSkew", 0)
        if skew <= 0:
            errors.append(invalid(f"{item}.maxSkew", skew, "must be greater than zero"))
        key = constraint.get("topologyKey", "")
        errors += (
            check(f"{item}.topologyKey", key, qualified_name)
            if key
            else [required(f"{item}.topologyKey", "can not be empty")]
        )
        when = constraint.get("whenUnsatisfiable", "")
        if when not in ("DoNotSchedule", "ScheduleAnyway"):
            errors.append(unsupported(f"{item}.whenUnsatisfiable", when, ["DoNotSchedule", "ScheduleAnyway"]))
        if (key, when) in seen:
            errors.append(duplicate(f"{item}.{{topologyKey, whenUnsatisfiable}}", f"{{{key}, {when}}}"))
        seen.add((key, when))
        errors += label_selector_errors(constraint.get("labelSelector"), f"{item}.labelSelector")
    return errors
