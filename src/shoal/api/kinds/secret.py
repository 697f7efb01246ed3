"""Secret (core/v1): sensitive key/value data, base64-encoded on the wire.

Defaults: ``type`` Opaque. ``stringData`` is a write-only convenience: its plain-text values
are base64-encoded into ``data`` (overriding keys already there) and the field is dropped,
as the API server does when it decodes a Secret.

Each well-known type requires its keys (``kubernetes.io/tls`` needs ``tls.crt`` and
``tls.key``, and so on). ``type`` is immutable; with ``immutable: true`` so is ``data``, and
``immutable`` itself cannot be unset. Validation never echoes a secret value back.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from shoal.api.errors import FIELD_TOO_LONG, FieldError, invalid, required
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import AGE, NAME, dig
from shoal.api.kinds.meta import top_level
from shoal.api.schema import Bool, Map, Str
from shoal.api.validation import check, config_map_key, immutable, immutable_data

MAX_SIZE = 1024 * 1024
REDACTED = "<secret contents redacted>"
SERVICE_ACCOUNT_NAME_KEY = "kubernetes.io/service-account.name"


def default(obj: Object) -> None:
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()
    obj.setdefault("type", "Opaque")


def _decode(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def validate(obj: Object) -> list[FieldError]:
    errors: list[FieldError] = []
    data: dict[str, str] = obj.get("data") or {}
    decoded: dict[str, bytes] = {}
    for key, value in data.items():
        errors += check(f"data[{key}]", key, config_map_key)
        raw = _decode(value)
        if raw is None:
            errors.append(invalid(f"data[{key}]", REDACTED, "must be a base64-encoded string"))
        else:
            decoded[key] = raw
    errors += _type_rules(obj, data, decoded)
    if sum(len(v) for v in decoded.values()) > MAX_SIZE:
        errors.append(FieldError("data", FIELD_TOO_LONG, f"must have at most {MAX_SIZE} bytes"))
    return errors


def _type_rules(obj: Object, data: dict[str, str], decoded: dict[str, bytes]) -> list[FieldError]:
    kind = obj.get("type", "Opaque")
    if kind == "kubernetes.io/service-account-token":
        if not dig(obj, "metadata", "annotations", SERVICE_ACCOUNT_NAME_KEY):
            return [required(f"metadata.annotations[{SERVICE_ACCOUNT_NAME_KEY}]")]
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if kind == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if key not in data:
            return [required(f"data[{key}]")]
        if key in decoded:
            try:
                json.loads(decoded[key])
            except ValueError as err:
                return [invalid(f"data[{key}]", REDACTED, str(err))]
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
    elif kind == "kubernetes.io/ssh-auth":
        if "ssh-privatekey" not in data:
            return [required("data[ssh-privatekey]")]
    elif kind == "kubernetes.io/tls":
        return [required(f"data[{key}]") for key in ("tls.crt", "tls.key") if key not in data]
    return []


def validate_update(new: Object, old: Object) -> list[FieldError]:
    errors = immutable("type", new.get("type"), old.get("type"))
    errors += immutable_data(new, old, ("data",))
    return errors


def _data_count(obj: Object) -> Any:
    return len(obj.get("data") or {})


SECRET = Kind(
    group="",
    version="v1",
    kind="Secret",
    plural="secrets",
    singular="secret",
    namespaced=True,
    has_status=False,
    schema=top_level(
        "io.k8s.api.core.v1.Secret",
        data=Map(Str(format="byte")),
        immutable=Bool(),
        stringData=Map(Str()),
        type=Str(default="Opaque"),
    ),
    columns=(
        NAME,
        Column("Type", lambda o: o.get("type", "")),
        Column("Data", _data_count, type="integer"),
        AGE,
    ),
    default=default,
    validate=validate,
    validate_update=validate_update,
    field_selectors={"type": lambda o: str(o.get("type", ""))},
)
