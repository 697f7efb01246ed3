"""Job (batch/v1): pods that run to completion.

Defaults (SetDefaults_Job): when neither ``completions`` nor ``parallelism`` is set both
become 1, otherwise only ``parallelism`` defaults to 1 (``completions`` unset means "done when
one pod succeeds"); ``backoffLimit`` 6 (2147483647 with ``backoffLimitPerIndex``);
``completionMode`` NonIndexed; ``suspend`` false; ``podReplacementPolicy``
TerminatingOrFailed (Failed with a ``podFailurePolicy``); the Job takes its template's
labels (generated ones included) when it has none; and the pod spec defaults in the
template — ``restartPolicy`` defaults to Always there, which a Job refuses, so the user
must say Never or OnFailure.

Selector: unless ``manualSelector`` is true, the API server generates it from the Job's uid
(``batch.kubernetes.io/controller-uid``) and labels the template with the uid and the Job's
name. ``default`` does this when the object already has a uid; a server that assigns the uid
after admission must call ``generate_selector`` itself.

``podFailurePolicy`` and ``successPolicy`` are kept as written (the Job controller does not
act on them yet). Updates may not change the selector, completionMode, completions or the
template — except, while the Job is suspended and has never started, the template's
labels, annotations, nodeSelector, tolerations, node affinity and scheduling gates.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from shoal.api.errors import FieldError, forbidden, required, unsupported
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import AGE, NAME, dig, human_duration, parse_time
from shoal.api.kinds.meta import LABEL_SELECTOR, TIME, top_level
from shoal.api.kinds.podspec import POD_TEMPLATE_SPEC, default_pod_template
from shoal.api.kinds.podvalidation import validate_pod_template
from shoal.api.kinds.workload import template_matches_selector, wide_columns
from shoal.api.schema import Arr, Bool, Int, Obj, Raw, Str
from shoal.api.selectors import label_selector_errors
from shoal.api.validation import immutable, non_negative

JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
CONTROLLER_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")
COMPLETION_MODES = ("NonIndexed", "Indexed")

JOB_SPEC = Obj(
    "io.k8s.api.batch.v1.JobSpec",
    {
        "activeDeadlineSeconds": Int(format="int64"),
        "backoffLimit": Int(),
        "backoffLimitPerIndex": Int(),
        "completionMode": Str(),
        "completions": Int(),
        "managedBy": Str(),
        "manualSelector": Bool(),
        "maxFailedIndexes": Int(),
        "parallelism": Int(),
        "podFailurePolicy": Raw(),  # kept as written: the controller does not apply it yet
        "podReplacementPolicy": Str(),
        "selector": LABEL_SELECTOR,
        "successPolicy": Raw(),  # kept as written: the controller does not apply it yet
        "suspend": Bool(),
        "template": POD_TEMPLATE_SPEC,
        "ttlSecondsAfterFinished": Int(),
    },
    required=("template",),
)

JOB_CONDITION = Obj(
    "io.k8s.api.batch.v1.JobCondition",
    {
        "lastProbeTime": TIME,
        "lastTransitionTime": TIME,
        "message": Str(),
        "reason": Str(),
        "status": Str(),
        "type": Str(),
    },
    required=("type", "status"),
)

JOB_STATUS = Obj(
    "io.k8s.api.batch.v1.JobStatus",
    {
        "active": Int(),
        "completedIndexes": Str(),
        "completionTime": TIME,
        "conditions": Arr(JOB_CONDITION, merge_key="type", strategy="merge"),
        "failed": Int(),
        "failedIndexes": Str(),
        "ready": Int(),
        "startTime": TIME,
        "succeeded": Int(),
        "terminating": Int(),
        "uncountedTerminatedPods": Obj(
            "io.k8s.api.batch.v1.UncountedTerminatedPods", {"failed": Arr(Str()), "succeeded": Arr(Str())}
        ),
    },
)


def default(obj: Object) -> None:
    spec = obj.setdefault("spec", {})
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 2**31 - 1 if "backoffLimitPerIndex" in spec else 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "Failed" if "podFailurePolicy" in spec else "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    default_pod_template(template)
    meta = obj.setdefault("metadata", {})
    if spec.get("manualSelector") is not True and meta.get("uid"):
        generate_selector(obj)
    _labels_from_template(obj)


def _labels_from_template(obj: Object) -> None:
    # After any generated labels, as a Job read back from a Kubernetes store shows them.
    template_labels = dig(obj, "spec", "template", "metadata", "labels")
    meta = obj.setdefault("metadata", {})
    if template_labels and not meta.get("labels"):
        meta["labels"] = dict(template_labels)


def generate_selector(obj: Object) -> None:
    """Select the Job's pods by its uid, and label its template with the uid and the Job's
    name (labels the user set are left alone: a conflict then fails validation). A Job
    without labels of its own then takes its template's."""
    meta, spec = obj.get("metadata") or {}, obj.setdefault("spec", {})
    template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    template_labels = template_meta.setdefault("labels", {})
    for label in JOB_NAME_LABELS:
        template_labels.setdefault(label, meta.get("name", ""))
    for label in CONTROLLER_UID_LABELS:
        template_labels.setdefault(label, meta.get("uid", ""))
    selector = spec.setdefault("selector", {})
    selector.setdefault("matchLabels", {}).setdefault(CONTROLLER_UID_LABELS[1], meta.get("uid", ""))
    _labels_from_template(obj)


def validate(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    for field in (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ):
        errors += non_negative(f"spec.{field}", spec.get(field))
    mode = spec.get("completionMode", "NonIndexed")
    if "backoffLimitPerIndex" in spec:
        errors += non_negative("spec.backoffLimitPerIndex", spec["backoffLimitPerIndex"])
        if mode != "Indexed":
            errors.append(forbidden("spec.backoffLimitPerIndex", "requires indexed completion mode"))
    if "maxFailedIndexes" in spec and "backoffLimitPerIndex" not in spec:
        errors.append(required("spec.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
    if mode not in COMPLETION_MODES:
        errors.append(unsupported("spec.completionMode", mode, list(COMPLETION_MODES)))
    elif mode == "Indexed" and "completions" not in spec:
        errors.append(required("spec.completions", "when completion mode is Indexed"))
    if "selector" in spec:
        errors += label_selector_errors(spec["selector"], "spec.selector")
    elif spec.get("manualSelector") is True:
        errors.append(required("spec.selector"))
    # Whether manual or generated, the selector must match the pods the Job makes.
    errors += template_matches_selector(spec, "spec")
    template = spec.get("template") or {}
    errors += validate_pod_template(template, "spec.template")
    restart = dig(template, "spec", "restartPolicy", default="")
    if restart not in ("OnFailure", "Never"):
        errors.append(unsupported("spec.template.spec.restartPolicy", restart, ["OnFailure", "Never"]))
    return errors


def validate_update(new: Object, old: Object) -> list[FieldError]:
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    errors = immutable("spec.completions", spec.get("completions"), old_spec.get("completions"))
    errors += immutable("spec.selector", spec.get("selector"), old_spec.get("selector"))
    errors += immutable("spec.template", spec.get("template"), _comparable_old_template(new, old))
    errors += immutable("spec.completionMode", spec.get("completionMode"), old_spec.get("completionMode"))
    return errors


def _comparable_old_template(new: Object, old: Object) -> Any:
    """The old template, with what a suspended, never-started Job may change taken from the
    new one (scheduling directives can be adjusted before a queue lets the Job start)."""
    template = dig(old, "spec", "template")
    if dig(new, "spec", "suspend") is not True or dig(old, "status", "startTime"):
        return template
    new_template = dig(new, "spec", "template", default={})
    merged = copy.deepcopy(template or {})
    merged_meta = merged.setdefault("metadata", {})
    for field in ("labels", "annotations"):
        _copy_field(dig(new_template, "metadata", default={}), merged_meta, field)
    if not merged_meta and "metadata" not in new_template:
        del merged["metadata"]
    new_pod, merged_pod = dig(new_template, "spec", default={}), merged.setdefault("spec", {})
    for field in ("nodeSelector", "tolerations", "schedulingGates"):
        _copy_field(new_pod, merged_pod, field)
    affinity = dict(merged_pod.get("affinity") or {})
    affinity.pop("nodeAffinity", None)
    if "nodeAffinity" in (new_pod.get("affinity") or {}):
        affinity["nodeAffinity"] = new_pod["affinity"]["nodeAffinity"]
    if affinity or "affinity" in new_pod:
        merged_pod["affinity"] = affinity
    else:
        merged_pod.pop("affinity", None)
    return merged


def _copy_field(source: dict[str, Any], target: dict[str, Any], field: str) -> None:
    target.pop(field, None)
    if field in source:
        target[field] = source[field]


# --- table columns (kubectl's job printer) ---


def _has_condition(obj: Object, kind: str) -> bool:
    conditions = dig(obj, "status", "conditions", default=[])
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _status(obj: Object) -> str:
    if _has_condition(obj, "Complete"):
        return "Complete"
    if _has_condition(obj, "Failed"):
        return "Failed"
    if dig(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    for condition in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _has_condition(obj, condition):
            return condition
    return "Running"


def _completions(obj: Object) -> str:
    succeeded = dig(obj, "status", "succeeded", default=0)
    completions = dig(obj, "spec", "completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = dig(obj, "spec", "parallelism", default=0)
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _duration(obj: Object) -> str:
    start = dig(obj, "status", "startTime")
    if not start:
        return ""
    end = dig(obj, "status", "completionTime")
    finish = parse_time(end) if end else datetime.now(UTC)
    return human_duration((finish - parse_time(start)).total_seconds())


JOB = Kind(
    group="batch",
    version="v1",
    kind="Job",
    plural="jobs",
    singular="job",
    namespaced=True,
    categories=("all",),
    schema=top_level("io.k8s.api.batch.v1.Job", spec=JOB_SPEC, status=JOB_STATUS),
    columns=(
        NAME,
        Column("Status", _status),
        Column("Completions", _completions),
        Column("Duration", _duration),
        AGE,
        *wide_columns(),
    ),
    default=default,
    validate=validate,
    validate_update=validate_update,
    field_selectors={"status.successful": lambda o: str(dig(o, "status", "succeeded", default=0))},
)
