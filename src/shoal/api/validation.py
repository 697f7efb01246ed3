"""Checks shared by every kind: names, labels, annotations, generic metadata.

The rules and messages follow Kubernetes' apimachinery validation, so that users see the
same wording they know from ``kubectl``.
"""

# No ``from __future__ import annotations`` here: it would bind the name ``annotations``,
# which this module defines as a function.
import ipaddress
import re
from typing import Any

from shoal.api.errors import FieldError, forbidden, invalid, required

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

ANNOTATIONS_MAX_BYTES = 256 * 1024


def dns1123_label(value: str) -> list[str]:
    """Problems with ``value`` as an RFC 1123 label (container names, namespace names)."""
    problems = []
    if len(value) > DNS1123_LABEL_MAX:
        problems.append(f"must be no more than {DNS1123_LABEL_MAX} characters")
    if not _DNS1123_LABEL.match(value):
        problems.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')"
        )
    return problems


def dns1123_subdomain(value: str) -> list[str]:
    """Problems with ``value`` as an RFC 1123 subdomain (the name of most objects)."""
    problems = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        problems.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        problems.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
            "or '.', and must start and end with an alphanumeric character (e.g. 'example.com')"
        )
    return problems


def dns1035_label(value: str) -> list[str]:
    """Problems with ``value`` as an RFC 1035 label (Service names: they become DNS names)."""
    problems = []
    if len(value) > DNS1123_LABEL_MAX:
        problems.append(f"must be no more than {DNS1123_LABEL_MAX} characters")
    if not _DNS1035_LABEL.match(value):
        problems.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
            "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')"
        )
    return problems


def qualified_name(value: str) -> list[str]:
    """Problems with a label or annotation key: ``[prefix/]name``."""
    problems = []
    prefix, slash, name = value.rpartition("/")
    if not slash:
        name = value
    elif not prefix:
        problems.append("prefix part must be non-empty")
    else:
        problems.extend("prefix part " + p for p in dns1123_subdomain(prefix))
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    elif not _QUALIFIED_NAME.match(name):
        problems.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')"
        )
    return problems


def label_value(value: str) -> list[str]:
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        problems.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
            "or '.', and must start and end with an alphanumeric character"
        )
    return problems


def env_var_name(value: str) -> list[str]:
    if _ENV_VAR_NAME.match(value):
        return []
    return [
        "a valid environment variable name must consist of alphabetic characters, digits, '_', "
        "'-', or '.', and must not start with a digit"
    ]


def check(path: str, value: str, rule: Any) -> list[FieldError]:
    """Run a string rule (one of the functions above) and turn its problems into FieldErrors."""
    return [invalid(path, value, p) for p in rule(value)]


def labels(path: str, value: dict[str, str] | None) -> list[FieldError]:
    errors: list[FieldError] = []
    for key, val in (value or {}).items():
        errors += check(path, key, qualified_name)
        if isinstance(val, str):
            errors += check(f"{path}[{key}]", val, label_value)
    return errors


def annotations(path: str, value: dict[str, str] | None) -> list[FieldError]:
    errors: list[FieldError] = []
    total = 0
    for key, val in (value or {}).items():
        errors += check(path, key, qualified_name)
        total += len(key) + len(val if isinstance(val, str) else "")
    if total > ANNOTATIONS_MAX_BYTES:
        errors.append(invalid(path, "", f"must have at most {ANNOTATIONS_MAX_BYTES} bytes"))
    return errors


def non_negative(path: str, value: int | None) -> list[FieldError]:
    if value is not None and value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def require(path: str, value: Any) -> list[FieldError]:
    """Required: absent, empty string and empty collection all count as missing."""
    if value is None or value == "" or value == [] or value == {}:
        return [required(path)]
    return []


_CONFIG_MAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def config_map_key(value: str) -> list[str]:
    """Problems with a ConfigMap or Secret key (it becomes a file name in a volume)."""
    problems = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        problems.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters")
    if not _CONFIG_MAP_KEY.match(value):
        problems.append("a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
    elif value in (".", "..") or value.startswith(".."):
        problems.append("must not be '.' or '..' or start with '..'")
    return problems


# --- Ports, addresses, immutability: shared by Pods, Services, Endpoints, controllers. ---

_PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_HAS_LETTER = re.compile(r"[a-z]")


def port_number(value: int) -> list[str]:
    if 1 <= value <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]


def port_name(value: str) -> list[str]:
    """Problems with an IANA_SVC_NAME (a container port's name, a named targetPort)."""
    problems = []
    if len(value) > 15:
        problems.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARS.match(value):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _HAS_LETTER.search(value):
        problems.append("must contain at least one letter (a-z)")
    if "--" in value:
        problems.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return problems


def port_num_or_name(path: str, value: int | str) -> list[FieldError]:
    """An ``IntOrString`` port: a number in range or a valid port name."""
    if isinstance(value, int):
        return [invalid(path, value, p) for p in port_number(value)]
    return check(path, value, port_name)


def ip_address(value: str) -> list[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def cidr(value: str) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return []


def immutable(path: str, new: Any, old: Any) -> list[FieldError]:
    """``field is immutable`` when an update changes ``path``'s value."""
    if new != old:
        return [invalid(path, new, "field is immutable")]
    return []


def inclusive_range(path: str, value: int, low: int, high: int) -> list[FieldError]:
    if low <= value <= high:
        return []
    return [invalid(path, value, f"must be between {low} and {high}, inclusive")]


def immutable_data(new: dict[str, Any], old: dict[str, Any], fields: tuple[str, ...]) -> list[FieldError]:
    """Secrets and ConfigMaps marked ``immutable: true`` stay so, and their data fields never
    change again (nodes may then stop watching them)."""
    if old.get("immutable") is not True:
        return []
    detail = "field is immutable when `immutable` is set"
    errors: list[FieldError] = []
    if new.get("immutable") is not True:
        errors.append(forbidden("immutable", detail))
    for field in fields:
        if (new.get(field) or {}) != (old.get(field) or {}):
            errors.append(forbidden(field, detail))
    return errors
