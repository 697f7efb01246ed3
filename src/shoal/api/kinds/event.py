"""Event (core/v1): a report that something happened to an object (a pod was scheduled, an
image pull failed). Written by controllers and agents, read by ``kubectl get events`` and
``describe``.

No defaults. ``involvedObject`` is required. Validation follows the legacy core/v1 rules:
an event's namespace must be its object's (a cluster-scoped object's events go to
``default``); an event with ``eventTime`` (the newer events API shape) must also say who
reported it, with what action and reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from shoal.api.errors import FieldError, invalid, required
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import dig, human_duration, parse_time
from shoal.api.kinds.meta import OBJECT_REFERENCE, TIME, top_level
from shoal.api.schema import Int, Obj, Str
from shoal.api.validation import check, dns1123_subdomain, qualified_name

_LIMITS = {"reportingInstance": 128, "action": 128, "reason": 128, "message": 1024}

_schema = top_level(
    "io.k8s.api.core.v1.Event",
    action=Str(),
    count=Int(),
    eventTime=Str(format="date-time"),  # MicroTime
    firstTimestamp=TIME,
    involvedObject=OBJECT_REFERENCE,
    lastTimestamp=TIME,
    message=Str(),
    reason=Str(),
    related=OBJECT_REFERENCE,
    reportingComponent=Str(),
    reportingInstance=Str(),
    series=Obj(
        "io.k8s.api.core.v1.EventSeries",
        {"count": Int(), "lastObservedTime": Str(format="date-time")},
    ),
    source=Obj("io.k8s.api.core.v1.EventSource", {"component": Str(), "host": Str()}),
    type=Str(),
)
EVENT_SCHEMA = Obj(_schema.name, _schema.fields, required=("metadata", "involvedObject"))


def validate(obj: Object) -> list[FieldError]:
    errors: list[FieldError] = []
    namespace = dig(obj, "metadata", "namespace")  # None until the server fills it from the URL
    object_namespace = dig(obj, "involvedObject", "namespace", default="")
    if obj.get("eventTime"):
        # The newer events API shape: cluster-scoped objects' events may also live in kube-system.
        mismatch = not object_namespace and namespace not in (None, "default", "kube-system")
    elif object_namespace:
        mismatch = namespace is not None and namespace != object_namespace
    else:
        mismatch = namespace not in (None, "", "default")
    if mismatch:
        errors.append(invalid("involvedObject.namespace", object_namespace, "does not match event.namespace"))
    if obj.get("eventTime"):
        component = obj.get("reportingComponent", "")
        if not component:
            errors.append(required("reportingComponent"))
        else:
            errors += check("reportingComponent", component, qualified_name)
        for field in ("reportingInstance", "action", "reason"):
            if not obj.get(field):
                errors.append(required(field))
    for field, limit in _LIMITS.items():
        if len(obj.get(field, "")) > limit:
            errors.append(invalid(field, "", f"can have at most {limit} characters"))
    if namespace:
        errors += check("metadata.namespace", namespace, dns1123_subdomain)
    return errors


# --- table columns (kubectl's event printer) ---


def _since(value: str | None) -> str:
    if not value:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - parse_time(value)).total_seconds())


def _first_seen(event: Object) -> str:
    return _since(event.get("firstTimestamp") or event.get("eventTime"))


def _last_seen(event: Object) -> str:
    if event.get("series"):
        return _since(dig(event, "series", "lastObservedTime"))
    if event.get("lastTimestamp"):
        return _since(event["lastTimestamp"])
    return _first_seen(event)


def _count(event: Object) -> int:
    if event.get("series"):
        return int(dig(event, "series", "count", default=0))
    return int(event.get("count") or 1)  # singleton events of the newer API have no count


def _object(event: Object) -> str:
    kind = str(dig(event, "involvedObject", "kind", default="")).lower()
    name = dig(event, "involvedObject", "name", default="")
    return f"{kind}/{name}" if name else kind


def _source(event: Object) -> str:
    component = dig(event, "source", "component") or event.get("reportingComponent", "")
    host = dig(event, "source", "host") or event.get("reportingInstance", "")
    return f"{component}, {host}" if host else str(component)


def _involved(field: str) -> Callable[[Object], str]:
    return lambda o: str(dig(o, "involvedObject", field, default=""))


EVENT = Kind(
    group="",
    version="v1",
    kind="Event",
    plural="events",
    singular="event",
    namespaced=True,
    short_names=("ev",),
    has_status=False,
    schema=EVENT_SCHEMA,
    columns=(
        Column("Last Seen", _last_seen),
        Column("Type", lambda o: o.get("type", "")),
        Column("Reason", lambda o: o.get("reason", "")),
        Column("Object", _object),
        Column("Subobject", lambda o: dig(o, "involvedObject", "fieldPath", default=""), priority=1),
        Column("Source", _source, priority=1),
        Column("Message", lambda o: str(o.get("message", "")).strip()),
        Column("First Seen", _first_seen, priority=1),
        Column("Count", _count, type="integer", priority=1),
        Column("Name", lambda o: o["metadata"]["name"], priority=1, format="name"),
    ),
    validate=validate,
    field_selectors={
        **{
            f"involvedObject.{f}": _involved(f)
            for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
        },
        "reason": lambda o: str(o.get("reason", "")),
        "reportingComponent": lambda o: str(o.get("reportingComponent", "")),
        "source": lambda o: str(dig(o, "source", "component", default="")),
        "type": lambda o: str(o.get("type", "")),
    },
)
