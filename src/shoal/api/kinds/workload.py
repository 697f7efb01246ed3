"""What the pod controllers (Deployment, ReplicaSet, DaemonSet, Job) share: the selector and
template checks, count-or-percent fields, and the wide table columns."""

from __future__ import annotations

import re
from typing import Any

from shoal.api.errors import FieldError, forbidden, invalid, required, unsupported
from shoal.api.kind import Column, Object
from shoal.api.kinds.columns import dig, selector_text
from shoal.api.kinds.podvalidation import validate_pod_template
from shoal.api.selectors import LabelSelector, label_selector_errors
from shoal.api.validation import non_negative

_PERCENT = re.compile(r"^[0-9]+%$")


def validate_selector(spec: dict[str, Any], path: str, kind_word: str) -> list[FieldError]:
    """``spec.selector`` must be present, valid and non-empty."""
    if "selector" not in spec:
        return [required(f"{path}.selector")]
    selector = spec["selector"]
    errors = label_selector_errors(selector, f"{path}.selector")
    if _is_empty(selector):
        errors.append(invalid(f"{path}.selector", selector, f"empty selector is invalid for {kind_word}"))
    return errors


def template_matches_selector(spec: dict[str, Any], path: str) -> list[FieldError]:
    """The pods a controller makes must be selected by its own selector."""
    selector = spec.get("selector")
    template_labels = dig(spec, "template", "metadata", "labels", default={})
    # An empty selector is reported on its own; an invalid one cannot be matched.
    if _is_empty(selector) or label_selector_errors(selector, "selector"):
        return []
    if LabelSelector.from_object(selector).matches(template_labels):
        return []
    detail = "`selector` does not match template `labels`"
    return [invalid(f"{path}.template.metadata.labels", template_labels, detail)]


def validate_replicated_template(spec: dict[str, Any], path: str, kind_name: str) -> list[FieldError]:
    """A template whose pods run forever under a controller (Deployment, ReplicaSet,
    DaemonSet): matched by the selector, valid, restartPolicy Always, no deadline."""
    errors = template_matches_selector(spec, path)
    template = spec.get("template") or {}
    errors += validate_pod_template(template, f"{path}.template")
    tspec = template.get("spec") or {}
    restart = tspec.get("restartPolicy", "")
    if restart != "Always":
        errors.append(unsupported(f"{path}.template.spec.restartPolicy", restart, ["Always"]))
    if "activeDeadlineSeconds" in tspec:
        detail = f"activeDeadlineSeconds in {kind_name} is not Supported"
        errors.append(forbidden(f"{path}.template.spec.activeDeadlineSeconds", detail))
    return errors


def _is_empty(selector: dict[str, Any] | None) -> bool:
    return not selector or not (selector.get("matchLabels") or selector.get("matchExpressions"))


def validate_int_or_percent(path: str, value: int | str | None) -> list[FieldError]:
    """A count (non-negative) or a percentage string such as ``25%``."""
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT.match(value):
            detail = (
                "a valid percent string must be a numeric string followed by an ending '%' "
                "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
            )
            return [invalid(path, value, detail)]
        return []
    return non_negative(path, value)


def int_or_percent_value(value: int | str | None) -> int:
    """The number in a count or percentage (25 for ``25%``); 0 for anything unparsable."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _PERCENT.match(value):
        return int(value[:-1])
    return 0


def not_more_than_100_percent(path: str, value: int | str | None) -> list[FieldError]:
    if isinstance(value, str) and _PERCENT.match(value) and int(value[:-1]) > 100:
        return [invalid(path, value, "must not be greater than 100%")]
    return []


def _containers(obj: Object) -> list[dict[str, Any]]:
    return list(dig(obj, "spec", "template", "spec", "containers", default=[]))


def wide_columns() -> tuple[Column, ...]:
    """CONTAINERS, IMAGES, SELECTOR: the ``-o wide`` columns of every pod controller."""
    return (
        Column("Containers", lambda o: ",".join(c.get("name", "") for c in _containers(o)), priority=1),
        Column("Images", lambda o: ",".join(c.get("image", "") for c in _containers(o)), priority=1),
        Column("Selector", lambda o: selector_text(dig(o, "spec", "selector")), priority=1),
    )
