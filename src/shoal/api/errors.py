"""API errors, each of which becomes a Kubernetes ``Status`` object on the wire.

Every error knows the HTTP code and the ``reason`` Kubernetes clients switch on, and says
which object (and for validation, which fields) it is about::

    ApiError
     ├── BadRequest            400  malformed body, unknown kind, bad selector, bad patch
     ├── Unauthorized          401
     ├── Forbidden             403
     ├── NotFound              404
     ├── MethodNotAllowed      405  verb not supported on this resource
     ├── NotAcceptable         406
     ├── AlreadyExists         409  create of a name that is taken
     ├── Conflict              409  stale resourceVersion (compare-and-swap lost)
     ├── Expired               410  watch/list from a compacted resourceVersion
     ├── RequestTooLarge       413
     ├── UnsupportedMediaType  415  patch content type we do not speak
     ├── Invalid               422  field errors, each with its path
     ├── ServiceUnavailable    503  store unreachable (transient)
     └── InternalError         500  a bug; never caused by client input
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field, as ``field.path: Kind of problem: detail``."""

    path: str
    type: str  # one of the FIELD_* constants below
    detail: str = ""
    value: Any = None
    has_value: bool = False

    def __str__(self) -> str:
        text = f"{self.path}: {self.type}" if self.path else self.type
        if self.has_value:
            text += f": {_render_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    @property
    def cause_reason(self) -> str:
        return _CAUSE_REASONS.get(self.type, "FieldValueInvalid")


FIELD_REQUIRED = "Required value"
FIELD_INVALID = "Invalid value"
FIELD_UNSUPPORTED = "Unsupported value"
FIELD_DUPLICATE = "Duplicate value"
FIELD_FORBIDDEN = "Forbidden"
FIELD_TOO_LONG = "Too long"
FIELD_TOO_MANY = "Too many"
FIELD_NOT_FOUND = "Not found"
FIELD_UNKNOWN = "Unknown field"

_CAUSE_REASONS = {
    FIELD_REQUIRED: "FieldValueRequired",
    FIELD_INVALID: "FieldValueInvalid",
    FIELD_UNSUPPORTED: "FieldValueNotSupported",
    FIELD_DUPLICATE: "FieldValueDuplicate",
    FIELD_FORBIDDEN: "FieldValueForbidden",
    FIELD_TOO_LONG: "FieldValueTooLong",
    FIELD_TOO_MANY: "FieldValueTooMany",
    FIELD_NOT_FOUND: "FieldValueNotFound",
    FIELD_UNKNOWN: "FieldValueUnknown",
}


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, FIELD_REQUIRED, detail)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, FIELD_INVALID, detail, value, True)


def unsupported(path: str, value: Any, allowed: list[str]) -> FieldError:
    quoted = ", ".join(f'"{a}"' for a in allowed)
    return FieldError(path, FIELD_UNSUPPORTED, f"supported values: {quoted}", value, True)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, FIELD_DUPLICATE, "", value, True)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, FIELD_FORBIDDEN, detail)


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


class ApiError(Exception):
    """An error the API reports to its client as a ``Status`` object."""

    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        name: str = "",
        group: str = "",
        kind: str = "",
        causes: list[FieldError] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes or []
        self.retry_after = retry_after

    def to_status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [
                {"reason": c.cause_reason, "message": str(c).removeprefix(f"{c.path}: "), "field": c.path}
                for c in self.causes
            ]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            status["details"] = details
        return status

    @classmethod
    def from_status(cls, status: dict[str, Any], http_code: int) -> ApiError:
        """Rebuild the matching error from a Status body a server sent (used by clients)."""
        reason = str(status.get("reason") or "")
        code = int(status.get("code") or http_code)
        err_cls = _BY_REASON.get(reason) or _BY_CODE.get(code) or ApiError
        details = status.get("details") or {}
        causes = [
            FieldError(str(c.get("field", "")), str(c.get("message", "")))
            for c in details.get("causes") or []
            if isinstance(c, dict)
        ]
        return err_cls(
            str(status.get("message") or f"HTTP {code}"),
            name=str(details.get("name", "")),
            group=str(details.get("group", "")),
            kind=str(details.get("kind", "")),
            causes=causes,
        )


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class Unauthorized(ApiError):
    code = 401
    reason = "Unauthorized"


class Forbidden(ApiError):
    code = 403
    reason = "Forbidden"


class NotFound(ApiError):
    code = 404
    reason = "NotFound"


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class NotAcceptable(ApiError):
    code = 406
    reason = "NotAcceptable"


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"


class Conflict(ApiError):
    code = 409
    reason = "Conflict"


class Expired(ApiError):
    code = 410
    reason = "Expired"


class RequestTooLarge(ApiError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ApiError):
    code = 422
    reason = "Invalid"

    @classmethod
    def for_object(cls, kind: str, group: str, name: str, causes: list[FieldError]) -> Invalid:
        qualified = f"{kind}.{group}" if group else kind
        listed = ", ".join(str(c) for c in causes)
        message = f'{qualified} "{name}" is invalid: ' + (listed if len(causes) == 1 else f"[{listed}]")
        return cls(message, name=name, group=group, kind=kind, causes=causes)


class ServiceUnavailable(ApiError):
    code = 503
    reason = "ServiceUnavailable"


class InternalError(ApiError):
    code = 500
    reason = "InternalError"


_BY_REASON: dict[str, type[ApiError]] = {
    c.reason: c
    for c in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        NotAcceptable,
        AlreadyExists,
        Conflict,
        Expired,
        RequestTooLarge,
        UnsupportedMediaType,
        Invalid,
        ServiceUnavailable,
        InternalError,
    )
}
_BY_CODE: dict[int, type[ApiError]] = {c.code: c for c in reversed(list(_BY_REASON.values()))}
