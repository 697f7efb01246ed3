"""ConfigMap (core/v1): non-secret configuration as string or binary key/value pairs.

With ``immutable: true``, ``data`` and ``binaryData`` can no longer change and ``immutable``
cannot be unset.
"""

from __future__ import annotations

from shoal.api.errors import FieldError, duplicate, invalid
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import AGE, NAME
from shoal.api.kinds.meta import top_level
from shoal.api.schema import Bool, Map, Str
from shoal.api.validation import check, config_map_key, immutable_data


def validate(obj: Object) -> list[FieldError]:
    errors: list[FieldError] = []
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    for field, values in (("data", data), ("binaryData", binary)):
        for key in values:
            errors += check(f"{field}[{key}]", key, config_map_key)
    for key in set(data) & set(binary):
        errors.append(duplicate(f"binaryData[{key}]", key))
    size = sum(len(k) + len(v) for k, v in data.items()) + sum(len(k) + len(v) for k, v in binary.items())
    if size > 1024 * 1024:
        errors.append(invalid("data", "", "the total size of a ConfigMap must be at most 1048576 bytes"))
    return errors


def validate_update(new: Object, old: Object) -> list[FieldError]:
    return immutable_data(new, old, ("data", "binaryData"))


CONFIG_MAP = Kind(
    group="",
    version="v1",
    kind="ConfigMap",
    plural="configmaps",
    singular="configmap",
    namespaced=True,
    short_names=("cm",),
    has_status=False,
    schema=top_level(
        "io.k8s.api.core.v1.ConfigMap",
        data=Map(Str()),
        binaryData=Map(Str(format="byte")),
        immutable=Bool(),
    ),
    columns=(
        NAME,
        Column("Data", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}), type="integer"),
        AGE,
    ),
    validate=validate,
    validate_update=validate_update,
)
