"""Docker Swarm's words in Kubernetes' objects: ``service create`` options as a Deployment, a
DaemonSet or a Job, and pods, nodes and services as the rows ``service ps`` and ``node ls``
print.

Everything here is pure (no client): the options are checked in full before anything is
sent, so that wrong input creates nothing. Each wrong value is a ``click.UsageError`` that
names the option, the value and the reason, as ``--publish "80:x": container port must be a
number 1-65535``.

How the options map:

- ``--publish [HOST:]CONTAINER[/PROTO]`` (or ``published=,target=,protocol=,mode=``): a
  container port with a Kubernetes ``hostPort`` (no ingress routing mesh: the port is open on
  the nodes that run a task, only);
- ``--mount``: ``bind`` → hostPath; named ``volume`` → hostPath under ``VOLUMES_DIR`` with type
  DirectoryOrCreate (node-local, as Docker's local driver); anonymous volume → emptyDir;
  ``tmpfs`` → emptyDir of medium Memory;
- ``--secret``/``--config``: a secret or configMap volume with the one key ``shoal secret|config
  create`` stores (``data_key``), mounted file by file (subPath) at the target;
- ``--limit-*``/``--reserve-*``: resources limits/requests, Docker units converted;
- ``--restart-condition any`` (the default): a Deployment; ``on-failure``/``none``: a Job;
- ``--health-*``: an exec probe, both readiness and liveness.

``service update``'s ``--*-add``/``--*-rm`` options change a Deployment's or DaemonSet's
template the same way (``update_service``); a Job's template cannot change.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import click

from shoal.api import Object
from shoal.scheduler.swarm import SwarmSyntaxError, parse_constraint, parse_preferences

SERVICE_LABEL: Final = "shoal.io/service"
CONSTRAINTS_ANNOTATION: Final = "shoal.io/constraints"
PREFERENCES_ANNOTATION: Final = "shoal.io/placement-preferences"
AVAILABILITY_ANNOTATION: Final = "shoal.io/availability"
AVAILABILITIES: Final = ("active", "pause", "drain")
COMMAND_IMAGE: Final = "none"  # a --command service has no image; the exec runtime needs none
MANAGER_LABELS: Final = ("node-role.kubernetes.io/manager", "node-role.kubernetes.io/control-plane")

SWARM_OBJECT_LABEL: Final = "shoal.io/swarm-object"  # "secret" or "config": made by shoal secret|config
VOLUMES_DIR: Final = "/var/lib/shoal/volumes"  # where a named volume lives on a node
SECRETS_DIR: Final = "/run/secrets"  # where a secret is mounted unless its target is absolute
DEFAULT_FILE_MODE: Final = 0o444  # Docker's mode for secret and config files
RESTART_CONDITIONS: Final = ("any", "on-failure", "none")
JOB_BACKOFF_LIMITS: Final = {"on-failure": 6, "none": 0}  # Kubernetes' default; none: no retry
HEALTH_DEFAULTS: Final = {"interval": 30, "timeout": 30, "retries": 3, "start_period": 0}  # Docker's


def data_key(name: str) -> str:
    """The one data key of a Secret or ConfigMap made by ``shoal secret|config create``
    NAME: the object's own name (a name is always a valid key), so that a Secret made with
    ``kubectl create secret generic NAME --from-file=NAME`` is the same thing."""
    return name


class OptionError(click.UsageError):
    """``--option "value": reason`` — a wrong value of one option."""

    def __init__(self, option: str, value: str, reason: str) -> None:
        super().__init__(f'{option} "{value}": {reason}')


@dataclass
class Health:
    """The ``--health-*`` options as given (durations in Docker's syntax)."""

    cmd: str | None = None
    interval: str | None = None
    timeout: str | None = None
    retries: int | None = None
    start_period: str | None = None


@dataclass
class ServiceSpec:
    """What ``service create`` was asked for, as given on the command line."""

    name: str
    image: str | None
    command: str | None
    args: list[str]
    replicas: int | None
    mode: str
    constraints: list[str] = field(default_factory=list)
    preferences: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    limits: dict[str, str | None] = field(default_factory=dict)
    reservations: dict[str, str | None] = field(default_factory=dict)
    publish: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    restart_condition: str | None = None
    restart_max_attempts: int | None = None
    health: Health = field(default_factory=Health)


def key_values(pairs: list[str], option: str) -> dict[str, str]:
    """``K=V`` arguments as a dict; a pair without ``=`` or with an empty key is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"{option} {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def _fields(text: str, option: str, flags: tuple[str, ...] = ()) -> list[tuple[str, str | None]]:
    """``k=v,k2=v2`` (CSV, so a value may be quoted) as (key, value) pairs, keys lower-cased;
    ``flags`` may stand alone (value None)."""
    try:
        cells = next(csv.reader([text]), [])
    except csv.Error as err:
        raise OptionError(option, text, str(err)) from None
    out: list[tuple[str, str | None]] = []
    for cell in cells:
        key, sep, value = cell.partition("=")
        key = key.strip().lower()
        if not sep and key in flags:
            out.append((key, None))
        elif not sep or not key:
            raise OptionError(option, text, f'field "{cell}" must be a key=value pair')
        else:
            out.append((key, value.strip()))
    return out


# -- units ---------------------------------------------------------------------------------

_BYTES = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi")


def parse_bytes(text: str, option: str) -> int:
    """Docker's memory sizes (``units.RAMInBytes``): a number of bytes, or with b, k, m, g, t
    or p (binary multiples, any case, optionally followed by ``i`` and/or ``b``: 64M, 64MB,
    64MiB and 64Mi are all 64 MiB)."""
    found = _BYTES.match(text.strip())
    if not found:
        raise OptionError(option, text, "expected a size such as 64M, 1.5g, 512MiB or a number of bytes")
    number, unit = found.groups()
    power = "kmgtp".index(unit.lower()) + 1 if unit else 0
    return int(Decimal(number) * 1024**power)


def bytes_quantity(size: int) -> str:
    """A byte count as a Kubernetes quantity with the largest exact binary suffix: 64Mi."""
    for power in range(len(_BINARY_SUFFIXES) - 1, 0, -1):
        if size and size % 1024**power == 0:
            return f"{size // 1024**power}{_BINARY_SUFFIXES[power]}"
    return str(size)


def memory_quantity(text: str, option: str) -> str:
    size = parse_bytes(text, option)
    if size <= 0:
        raise OptionError(option, text, "must be more than 0 bytes")
    return bytes_quantity(size)


def cpu_quantity(text: str, option: str) -> str:
    """Docker's decimal CPUs (0.5, 2) as a Kubernetes quantity (500m, 2); ``500m`` is taken too."""
    value = text.strip()
    scale = Decimal(1)
    if value.endswith("m"):
        value, scale = value[:-1], Decimal("0.001")
    try:
        cpus = Decimal(value) * scale
    except InvalidOperation:
        raise OptionError(option, text, "expected a number of CPUs such as 0.5 or 2") from None
    if not cpus.is_finite() or cpus <= 0:
        raise OptionError(option, text, "must be a number of CPUs more than 0")
    millis = cpus * 1000
    if millis != millis.to_integral_value():
        raise OptionError(option, text, "the smallest step is 0.001 CPU (1m)")
    whole = int(millis)
    return str(whole // 1000) if whole % 1000 == 0 else f"{whole}m"


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "μs": Decimal("1e-6"),
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}


def parse_duration(text: str, option: str) -> Decimal:
    """Go's ``time.ParseDuration`` (what Docker reads): 1m30s, 500ms, 1.5h; ``0`` alone."""
    value = text.strip()
    if value == "0":
        return Decimal(0)
    parts = list(_DURATION_PART.finditer(value))
    if not value or "".join(p.group(0) for p in parts) != value:
        raise OptionError(
            option, text, "expected a duration such as 30s, 1m30s or 500ms (a unit is required)"
        )
    return sum((Decimal(p.group(1)) * _DURATION_UNITS[p.group(2)] for p in parts), Decimal(0))


def duration_seconds(text: str, option: str, *, minimum: int = 1) -> int:
    """A duration rounded up to whole seconds, at least ``minimum``."""
    return max(minimum, math.ceil(parse_duration(text, option)))


# -- ports ---------------------------------------------------------------------------------

_PROTOCOLS = ("tcp", "udp", "sctp")


def _port_range(text: str, what: str, option: str, whole: str) -> list[int]:
    first, sep, last = text.partition("-")
    ports = []
    for part in (first, last) if sep else (first,):
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise OptionError(option, whole, f"{what} port must be a number 1-65535")
        ports.append(int(part))
    if sep and ports[1] < ports[0]:
        raise OptionError(option, whole, f"{what} port range {text} is backwards")
    return list(range(ports[0], ports[-1] + 1))


def _protocol(value: str, option: str, whole: str) -> str:
    if value.lower() not in _PROTOCOLS:
        raise OptionError(option, whole, f'protocol "{value}" is not one of tcp, udp, sctp')
    return value.upper()


def parse_publish(text: str, option: str = "--publish") -> list[dict[str, Any]]:
    """One ``--publish``: ``[HOST:]CONTAINER[/tcp|udp|sctp]`` (ranges as 8080-8081:80-81) or
    ``published=8080,target=80[,protocol=tcp][,mode=ingress|host]``; container ports, each
    with its hostPort when a published port is given."""
    if "=" in text:
        values: dict[str, str] = {}
        for key, value in _fields(text, option):
            if key not in ("published", "target", "protocol", "mode"):
                raise OptionError(
                    option, text, f'unknown key "{key}" (expected published, target, protocol, mode)'
                )
            values[key] = value or ""
        if "target" not in values:
            raise OptionError(option, text, "target= (the container port) is required")
        if values.get("mode", "ingress") not in ("ingress", "host"):
            raise OptionError(option, text, f'mode "{values["mode"]}" is not one of ingress, host')
        container = _port_range(values["target"], "container", option, text)
        host = _port_range(values["published"], "published", option, text) if values.get("published") else []
        protocol = _protocol(values.get("protocol") or "tcp", option, text)
    else:
        body, sep, proto = text.partition("/")
        protocol = _protocol(proto if sep else "tcp", option, text)
        parts = body.split(":")
        if len(parts) > 2:
            raise OptionError(option, text, "a host IP is not supported; give [HOST:]CONTAINER[/PROTOCOL]")
        container = _port_range(parts[-1], "container", option, text)
        host = _port_range(parts[0], "published", option, text) if len(parts) == 2 else []
    if host and len(host) != len(container):
        raise OptionError(option, text, "the published and container port ranges differ in length")
    out: list[dict[str, Any]] = []
    for i, port in enumerate(container):
        entry: dict[str, Any] = {"containerPort": port}
        if host:
            entry["hostPort"] = host[i]
        entry["protocol"] = protocol
        out.append(entry)
    return out


def build_ports(texts: list[str]) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    published: dict[tuple[int, str], str] = {}
    for text in texts:
        for entry in parse_publish(text):
            if "hostPort" in entry:
                key = (entry["hostPort"], entry["protocol"])
                if key in published:
                    raise OptionError(
                        "--publish",
                        text,
                        f"published port {key[0]}/{key[1].lower()} is already given by {published[key]!r}",
                    )
                published[key] = text
            if entry not in ports:
                ports.append(entry)
    return ports


# -- mounts, secrets, configs --------------------------------------------------------------

_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # Docker's rule for volume names
_TRUE, _FALSE = ("1", "t", "true"), ("0", "f", "false")


def _flag(value: str | None, key: str, option: str, text: str) -> bool:
    if value is None or value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise OptionError(option, text, f'{key}="{value}" must be true or false')


def _absolute(path: str, what: str, option: str, text: str) -> str:
    if not path.startswith("/"):
        raise OptionError(option, text, f'{what} "{path}" must be an absolute path')
    return posixpath.normpath(path).replace("//", "/")


@dataclass
class Mounted:
    """A pod volume and where the container mounts it."""

    volume: dict[str, Any]
    mount: dict[str, Any]
    option: str
    text: str


def parse_mount(text: str, volume_name: str, option: str = "--mount") -> Mounted:
    """One ``--mount type=volume|bind|tmpfs,source=..,target=..[,readonly][,tmpfs-size=..]``
    (``src``, ``dst``/``destination`` and ``ro`` as Docker takes them; type defaults to
    volume)."""
    kind, source, target, readonly, size = "volume", "", "", False, None
    for key, value in _fields(text, option, flags=("readonly", "ro")):
        if key == "type":
            kind = (value or "").lower()
            if kind not in ("volume", "bind", "tmpfs"):
                raise OptionError(option, text, f'type "{value}" is not one of volume, bind, tmpfs')
        elif key in ("source", "src"):
            source = value or ""
        elif key in ("target", "dst", "destination"):
            target = value or ""
        elif key in ("readonly", "ro"):
            readonly = _flag(value, key, option, text)
        elif key == "tmpfs-size":
            size = value or ""
        else:
            raise OptionError(
                option,
                text,
                f'unknown key "{key}" (expected type, source, target, readonly, tmpfs-size)',
            )
    if not target:
        raise OptionError(option, text, "target= (the path in the container) is required")
    mount_path = _absolute(target, "target", option, text)
    if size is not None and kind != "tmpfs":
        raise OptionError(option, text, "tmpfs-size applies to type=tmpfs only")
    volume: dict[str, Any] = {"name": volume_name}
    if kind == "bind":
        if not source:
            raise OptionError(option, text, "source= (the host path) is required for type=bind")
        volume["hostPath"] = {"path": _absolute(source, "source", option, text)}
    elif kind == "tmpfs":
        if source:
            raise OptionError(option, text, "a tmpfs mount has no source")
        empty_dir: dict[str, Any] = {"medium": "Memory"}
        if size is not None:
            empty_dir["sizeLimit"] = bytes_quantity(_size(size, option, text))
        volume["emptyDir"] = empty_dir
    elif source:
        if not _VOLUME_NAME.match(source):
            raise OptionError(
                option,
                text,
                f'"{source}" is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+; a host path needs type=bind)',
            )
        volume["hostPath"] = {"path": f"{VOLUMES_DIR}/{source}", "type": "DirectoryOrCreate"}
    else:
        volume["emptyDir"] = {}
    mount: dict[str, Any] = {"name": volume_name, "mountPath": mount_path}
    if readonly:
        mount["readOnly"] = True
    return Mounted(volume, mount, option, text)


def _size(value: str, option: str, text: str) -> int:
    try:
        size = parse_bytes(value, option)
    except OptionError:
        raise OptionError(option, text, f'tmpfs-size "{value}" is not a size such as 64m or 1g') from None
    if size <= 0:
        raise OptionError(option, text, "tmpfs-size must be more than 0 bytes")
    return size


def parse_file_ref(text: str, what: str, volume_name: str, option: str = "") -> Mounted:
    """One ``--secret`` or ``--config`` (``what``): ``NAME`` or
    ``source=NAME[,target=PATH][,mode=0400]``. A secret's relative target is under
    /run/secrets (default: its name), a config's under / (default: /NAME)."""
    option = option or f"--{what}"
    name, target, mode = "", "", DEFAULT_FILE_MODE
    if "=" not in text:
        name = text.strip()
    else:
        for key, value in _fields(text, option):
            value = value or ""
            if key in ("source", "src"):
                name = value
            elif key == "target":
                target = value
            elif key == "mode":
                try:
                    mode = int(value, 8)
                except ValueError:
                    mode = -1
                if not 0 <= mode <= 0o777:
                    raise OptionError(option, text, f'mode "{value}" must be octal permissions such as 0400')
            elif key in ("uid", "gid"):
                raise OptionError(
                    option, text, f"{key} is not supported: the file belongs to the container's user"
                )
            else:
                raise OptionError(option, text, f'unknown key "{key}" (expected source, target, mode)')
    if not name:
        raise OptionError(option, text, f"the {what}'s name (source=) is required")
    base = SECRETS_DIR if what == "secret" else "/"
    path = posixpath.normpath(posixpath.join(base, target or name))
    file_name = posixpath.basename(path)
    if ".." in (target or name).split("/") or target.endswith("/") or not file_name:
        raise OptionError(option, text, f'target "{target or name}" must name a file')
    item = {"key": data_key(name), "path": file_name, "mode": mode}
    source_field, name_field = ("secret", "secretName") if what == "secret" else ("configMap", "name")
    volume = {"name": volume_name, source_field: {name_field: name, "items": [item]}}
    mount = {"name": volume_name, "mountPath": path, "subPath": file_name, "readOnly": True}
    return Mounted(volume, mount, option, text)


def build_mounts(spec: ServiceSpec) -> list[Mounted]:
    """Every --mount, --secret and --config; two of them may not share a target."""
    mounted = [parse_mount(text, f"mount-{i}") for i, text in enumerate(spec.mounts)]
    mounted += [parse_file_ref(text, "secret", f"secret-{i}") for i, text in enumerate(spec.secrets)]
    mounted += [parse_file_ref(text, "config", f"config-{i}") for i, text in enumerate(spec.configs)]
    seen: dict[str, Mounted] = {}
    for entry in mounted:
        path = entry.mount["mountPath"]
        if path in seen:
            other = seen[path]
            raise OptionError(
                entry.option, entry.text, f"{path} is already the target of {other.option} {other.text!r}"
            )
        seen[path] = entry
    return mounted


def file_refs(workload: Object) -> list[tuple[str, str, dict[str, Any]]]:
    """``("secret"|"config", name, item)`` for each secret and configMap volume item of a
    workload's template; the items are the object's own (to be changed in place)."""
    volumes = (((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []
    out: list[tuple[str, str, dict[str, Any]]] = []
    for volume in volumes:
        for field_name, what, name_field in (
            ("secret", "secret", "secretName"),
            ("configMap", "config", "name"),
        ):
            source = volume.get(field_name)
            if source:
                out += [(what, str(source.get(name_field, "")), item) for item in source.get("items") or []]
    return out


# -- resources, health, restart ------------------------------------------------------------


def _resources(values: dict[str, str | None], kind: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for resource, value in values.items():
        if value is None:
            continue
        option = f"--{kind}-{resource}"
        out[resource] = cpu_quantity(value, option) if resource == "cpu" else memory_quantity(value, option)
    return out


def build_probe(health: Health) -> dict[str, Any] | None:
    """The exec probe for ``--health-cmd`` (Docker's CMD-SHELL: ``sh -c CMD``), with Docker's
    defaults: every 30s, 30s timeout, 3 retries, no start period."""
    given = {
        "--health-interval": health.interval,
        "--health-timeout": health.timeout,
        "--health-retries": health.retries,
        "--health-start-period": health.start_period,
    }
    if health.cmd is None:
        for option, value in given.items():
            if value is not None:
                raise OptionError(
                    option, str(value), "needs --health-cmd (an image's HEALTHCHECK is not read)"
                )
        return None
    if not health.cmd.strip():
        raise OptionError("--health-cmd", health.cmd, "the command is empty")
    if health.retries is not None and health.retries < 1:
        raise OptionError("--health-retries", str(health.retries), "must be 1 or more")
    defaults = HEALTH_DEFAULTS
    return {
        "exec": {"command": ["sh", "-c", health.cmd]},
        "initialDelaySeconds": (
            duration_seconds(health.start_period, "--health-start-period", minimum=0)
            if health.start_period is not None
            else defaults["start_period"]
        ),
        "periodSeconds": (
            duration_seconds(health.interval, "--health-interval")
            if health.interval is not None
            else defaults["interval"]
        ),
        "timeoutSeconds": (
            duration_seconds(health.timeout, "--health-timeout")
            if health.timeout is not None
            else defaults["timeout"]
        ),
        "failureThreshold": health.retries if health.retries is not None else defaults["retries"],
    }


def _restart(spec: ServiceSpec) -> str:
    """``any`` (a Deployment or DaemonSet) or ``on-failure``/``none`` (a Job)."""
    condition = spec.restart_condition or "any"
    if condition not in RESTART_CONDITIONS:
        raise OptionError("--restart-condition", condition, "must be one of any, on-failure, none")
    if spec.restart_max_attempts is not None:
        if spec.restart_max_attempts < 0:
            raise OptionError("--restart-max-attempts", str(spec.restart_max_attempts), "must be 0 or more")
        if condition == "any":
            raise OptionError(
                "--restart-max-attempts",
                str(spec.restart_max_attempts),
                "needs --restart-condition on-failure or none: a service restarted on any exit"
                " is a Deployment, which cannot limit its restarts",
            )
    if condition != "any" and spec.mode == "global":
        raise OptionError(
            "--restart-condition",
            condition,
            "applies to replicated services only: a global service (DaemonSet) always restarts",
        )
    return condition


def build_service(spec: ServiceSpec) -> Object:
    """The Deployment (replicated), DaemonSet (global) or Job (``--restart-condition
    on-failure|none``) for a service; raises click errors (one line each) for wrong input."""
    if (spec.image is None) == (spec.command is None):
        raise click.UsageError("give exactly one of --image IMG or --command CMD")
    if spec.mode == "global" and spec.replicas is not None:
        raise click.UsageError("--replicas applies to replicated services, not --mode global")
    if spec.replicas is not None and spec.replicas < 0:
        raise click.BadParameter(f"{spec.replicas}: must be 0 or more", param_hint="--replicas")
    try:
        for text in spec.constraints:
            parse_constraint(text)
        parse_preferences(spec.preferences)
    except SwarmSyntaxError as err:
        raise click.BadParameter(str(err), param_hint="--constraint/--placement-pref") from None
    condition = _restart(spec)
    env = key_values(spec.env, "--env")
    labels = key_values(spec.labels, "--label")
    container: dict[str, Any] = {"name": spec.name, "image": spec.image or COMMAND_IMAGE}
    if spec.command is not None:
        try:
            command = shlex.split(spec.command)
        except ValueError as err:
            raise click.BadParameter(f"{spec.command!r}: {err}", param_hint="--command") from None
        if not command:
            raise click.BadParameter("empty command", param_hint="--command")
        container["command"] = command
    if spec.args:
        container["args"] = list(spec.args)
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    ports = build_ports(spec.publish)
    if ports:
        container["ports"] = ports
    limits, requests = _resources(spec.limits, "limit"), _resources(spec.reservations, "reserve")
    if limits or requests:
        container["resources"] = {
            **({"limits": limits} if limits else {}),
            **({"requests": requests} if requests else {}),
        }
    mounted = build_mounts(spec)
    if mounted:
        container["volumeMounts"] = [m.mount for m in mounted]
    probe = build_probe(spec.health)
    if probe is not None:
        container["readinessProbe"] = probe
        container["livenessProbe"] = copy.deepcopy(probe)
    selector = {SERVICE_LABEL: spec.name}
    annotations: dict[str, str] = {}
    if spec.constraints:
        annotations[CONSTRAINTS_ANNOTATION] = json.dumps(spec.constraints)
    if spec.preferences:
        annotations[PREFERENCES_ANNOTATION] = json.dumps(spec.preferences)
    template_meta: dict[str, Any] = {"labels": {**selector, "app": spec.name}}
    if annotations:
        template_meta["annotations"] = annotations
    pod_spec: dict[str, Any] = {"containers": [container]}
    if mounted:
        pod_spec["volumes"] = [m.volume for m in mounted]
    metadata = {"name": spec.name, "labels": {**labels, **selector}}
    replicas = 1 if spec.replicas is None else spec.replicas
    if condition != "any":
        # A Job's selector is generated from its uid by the API server; the template keeps
        # the service label, which is how service ps and shoal ps find the tasks.
        pod_spec["restartPolicy"] = "OnFailure" if condition == "on-failure" else "Never"
        backoff = spec.restart_max_attempts
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata,
            "spec": {
                "parallelism": replicas,
                "completions": replicas,
                "backoffLimit": JOB_BACKOFF_LIMITS[condition] if backoff is None else backoff,
                "template": {"metadata": template_meta, "spec": pod_spec},
            },
        }
    body: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "template": {"metadata": template_meta, "spec": pod_spec},
    }
    global_mode = spec.mode == "global"
    if not global_mode:
        body = {"replicas": replicas, **body}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet" if global_mode else "Deployment",
        "metadata": metadata,
        "spec": body,
    }


@dataclass
class ServiceUpdate:
    """What ``service update`` was asked for: docker's -add/-rm options, resources, replicas."""

    env_add: list[str] = field(default_factory=list)
    env_rm: list[str] = field(default_factory=list)
    publish_add: list[str] = field(default_factory=list)
    publish_rm: list[str] = field(default_factory=list)
    mount_add: list[str] = field(default_factory=list)
    mount_rm: list[str] = field(default_factory=list)
    secret_add: list[str] = field(default_factory=list)
    secret_rm: list[str] = field(default_factory=list)
    config_add: list[str] = field(default_factory=list)
    config_rm: list[str] = field(default_factory=list)
    limits: dict[str, str | None] = field(default_factory=dict)
    reservations: dict[str, str | None] = field(default_factory=dict)
    replicas: int | None = None


def _next_name(prefix: str, taken: set[str]) -> str:
    index = 0
    while f"{prefix}-{index}" in taken:
        index += 1
    taken.add(f"{prefix}-{index}")
    return f"{prefix}-{index}"


def update_service(workload: Object, update: ServiceUpdate) -> Object:
    """The workload with the update applied (a copy); removals first, then additions, as
    docker applies them. A removal that matches nothing is an error, as is an addition that
    collides with what the service already has."""
    name = str(workload["metadata"]["name"])
    kind = str(workload.get("kind"))
    if kind == "Job":
        raise click.ClickException(
            f"{name}: a job (--restart-condition on-failure|none) cannot be updated: its pod"
            " template is fixed; remove it and create it again"
        )
    if update.replicas is not None:
        if kind == "DaemonSet":
            raise click.UsageError("--replicas applies to replicated services, not --mode global")
        if update.replicas < 0:
            raise OptionError("--replicas", str(update.replicas), "must be 0 or more")
    out = copy.deepcopy(workload)
    if update.replicas is not None:
        out["spec"]["replicas"] = update.replicas
    pod = out["spec"]["template"]["spec"]
    container = pod["containers"][0]

    env = [e for e in container.get("env") or [] if e.get("name") not in update.env_rm]
    for key, value in key_values(update.env_add, "--env-add").items():
        env = [e for e in env if e.get("name") != key] + [{"name": key, "value": value}]
    container["env"] = env

    ports: list[dict[str, Any]] = list(container.get("ports") or [])
    for text in update.publish_rm:
        for wanted in parse_publish(text, "--publish-rm"):
            kept = [p for p in ports if not _same_port(p, wanted)]
            if len(kept) == len(ports):
                raise OptionError("--publish-rm", text, "the service publishes no such port")
            ports = kept
    for text in update.publish_add:
        for entry in parse_publish(text, "--publish-add"):
            clash = [p for p in ports if "hostPort" in entry and _same_host_port(p, entry)]
            if clash:
                raise OptionError(
                    "--publish-add",
                    text,
                    f"published port {entry['hostPort']} is already in use by this service",
                )
            if entry not in ports:
                ports.append(entry)
    container["ports"] = ports

    volumes: list[dict[str, Any]] = list(pod.get("volumes") or [])
    by_name = {str(v.get("name")): v for v in volumes}
    mounts: list[dict[str, Any]] = list(container.get("volumeMounts") or [])
    for text in update.mount_rm:
        path = posixpath.normpath(text) if text.startswith("/") else text
        kept = [m for m in mounts if m.get("mountPath") != path]
        if len(kept) == len(mounts):
            raise OptionError("--mount-rm", text, "the service has no mount with this target")
        mounts = kept
    for what, names in (("secret", update.secret_rm), ("config", update.config_rm)):
        field_name, name_field = ("secret", "secretName") if what == "secret" else ("configMap", "name")
        for ref in names:
            kept = [
                m
                for m in mounts
                if (by_name.get(str(m.get("name"))) or {}).get(field_name, {}).get(name_field) != ref
            ]
            if len(kept) == len(mounts):
                raise OptionError(f"--{what}-rm", ref, f"the service does not use this {what}")
            mounts = kept
    # Volumes no container mounts any more go; the names of those left stay taken.
    container["volumeMounts"] = mounts
    used = {
        str(m.get("name"))
        for c in [*pod.get("initContainers", []), *pod["containers"]]
        for m in (c.get("volumeMounts") or [])
    }
    volumes = [v for v in volumes if v.get("name") in used]
    taken = {str(v.get("name")) for v in volumes}
    added = [parse_mount(text, _next_name("mount", taken), "--mount-add") for text in update.mount_add]
    added += [
        parse_file_ref(text, "secret", _next_name("secret", taken), "--secret-add")
        for text in update.secret_add
    ]
    added += [
        parse_file_ref(text, "config", _next_name("config", taken), "--config-add")
        for text in update.config_add
    ]
    targets = {str(m.get("mountPath")) for m in mounts}
    for new in added:
        path = new.mount["mountPath"]
        if path in targets:
            raise OptionError(new.option, new.text, f"{path} is already a mount target of the service")
        targets.add(path)
        mounts.append(new.mount)
        volumes.append(new.volume)
    pod["volumes"] = volumes

    limits, requests = _resources(update.limits, "limit"), _resources(update.reservations, "reserve")
    if limits or requests:
        resources = container.setdefault("resources", {})
        resources.setdefault("limits", {}).update(limits)
        resources.setdefault("requests", {}).update(requests)
        for part in ("limits", "requests"):
            if not resources[part]:
                del resources[part]
    for key in ("env", "ports", "volumeMounts"):
        if not container[key]:
            del container[key]
    if not pod["volumes"]:
        del pod["volumes"]
    return out


def _same_port(port: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether ``--publish-rm`` means this port: same container port and protocol, and the
    same published port when one was given."""
    if port.get("containerPort") != wanted["containerPort"]:
        return False
    if str(port.get("protocol") or "TCP") != wanted["protocol"]:
        return False
    same_published: bool = port.get("hostPort") == wanted.get("hostPort")
    return "hostPort" not in wanted or same_published


def _same_host_port(port: dict[str, Any], entry: dict[str, Any]) -> bool:
    same_port: bool = port.get("hostPort") == entry["hostPort"]
    return same_port and str(port.get("protocol") or "TCP") == entry["protocol"]


# -- reading objects back ------------------------------------------------------------------


def match_labels_selector(workload: Object) -> str:
    """The workload's ``spec.selector.matchLabels`` as a label selector string."""
    labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _waiting_reason(pod: Object) -> str:
    """Why a container of a Running pod is not running (as CrashLoopBackOff), else ""."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "running" not in state:
            return str((state.get("waiting") or {}).get("reason") or "Starting")
    return ""


def is_running(pod: Object) -> bool:
    """Running as docker counts tasks: phase Running, not terminating, and no container
    waiting to be restarted."""
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    phase = (pod.get("status") or {}).get("phase")
    return not terminating and phase == "Running" and not _waiting_reason(pod)


def service_mode(workload: Object) -> str:
    """docker's MODE: ``replicated``, ``global``, or ``replicated job`` for a Job."""
    return {"DaemonSet": "global", "Job": "replicated job"}.get(str(workload.get("kind")), "replicated")


def desired_replicas(workload: Object, ready_nodes: int) -> int:
    """Replicas asked for; for a global service, the DaemonSet's count once it has one; for
    a job, the tasks that may run at once (none once it has finished)."""
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    mode = service_mode(workload)
    if mode == "replicated":
        return int(spec.get("replicas", 1))
    if mode == "replicated job":
        return 0 if job_outcome(workload) else int(spec.get("parallelism", 1))
    return int(status.get("desiredNumberScheduled") or ready_nodes)


def rolled_out(workload: Object) -> bool:
    """For a Deployment, whether its controller has seen the latest spec and all its pods
    are of it (``kubectl rollout status``'s test, less availability); True for other kinds."""
    if workload.get("kind") != "Deployment":
        return True
    meta, spec, status = (
        workload.get("metadata") or {},
        workload.get("spec") or {},
        workload.get("status") or {},
    )
    desired = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 1)
        and int(status.get("updatedReplicas") or 0) == desired
        and int(status.get("replicas") or 0) == desired
    )


def job_outcome(job: Object) -> str:
    """``Complete`` or ``Failed`` once a Job has finished (with the reason for a failure),
    else ""."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            if cond["type"] == "Failed":
                return f"Failed: {cond.get('message') or cond.get('reason') or ''}".rstrip(": ")
            return "Complete"
    return ""


def job_completions(job: Object) -> tuple[int, int]:
    """(succeeded, completions) of a Job."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    return int(status.get("succeeded") or 0), int(spec.get("completions", 1))


def replicas_cell(workload: Object, running: int, ready_nodes: int) -> str:
    """docker's REPLICAS: ``2/3``, and for a job ``0/3 (3/3 completed)``."""
    cell = f"{running}/{desired_replicas(workload, ready_nodes)}"
    if service_mode(workload) == "replicated job":
        succeeded, completions = job_completions(workload)
        cell += f" ({succeeded}/{completions} completed)"
    return cell


def image_or_command(workload: Object) -> str:
    containers = (((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    if not containers:
        return ""
    first = containers[0]
    if first.get("command"):
        return shlex.join([*first["command"], *(first.get("args") or [])])
    return str(first.get("image") or "")


def ago(timestamp: str | None, now: datetime | None = None) -> str:
    """``5 seconds ago``, as docker prints a task's state age."""
    if not timestamp:
        return ""
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "Less than a second ago" if seconds < 1 else f"{seconds} second{'s' if seconds != 1 else ''} ago"


def task_row(pod: Object, now: datetime | None = None) -> list[str]:
    """NAME NODE DESIRED STATE CURRENT STATE ERROR for one pod, as ``docker service ps``."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    terminating = bool(meta.get("deletionTimestamp"))
    phase = str(status.get("phase") or "Pending")
    desired = "Shutdown" if terminating or phase in ("Succeeded", "Failed") else "Running"
    since = status.get("startTime") if phase == "Running" else meta.get("creationTimestamp")
    current = "Shutting down" if terminating else (phase == "Running" and _waiting_reason(pod)) or phase
    age = ago(since, now)
    error = ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            error = str(cond.get("message") or cond.get("reason") or "")
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
        last_code = ((cs.get("lastState") or {}).get("terminated") or {}).get("exitCode")
        if error:
            break
        if waiting.get("reason") == "CrashLoopBackOff" and last_code:
            error = f"non-zero exit ({last_code})"
        elif waiting or terminated.get("exitCode"):
            detail = waiting or terminated
            error = ": ".join(str(p) for p in (detail.get("reason"), detail.get("message")) if p)
    return [
        str(meta.get("name", "")),
        str(spec.get("nodeName") or ""),
        desired,
        f"{current} {age}".strip(),
        " ".join(error.split()),
    ]


def node_status(node: Object) -> str:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return {"True": "Ready", "False": "Down"}.get(str(cond.get("status")), "Unknown")
    return "Unknown"


def availability(node: Object) -> str:
    meta = node.get("metadata") or {}
    found = (meta.get("annotations") or {}).get(AVAILABILITY_ANNOTATION) or (meta.get("labels") or {}).get(
        AVAILABILITY_ANNOTATION
    )
    return str(found or "active")


def is_manager(node: Object) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return any(key in labels for key in MANAGER_LABELS) or labels.get("shoal.io/role") == "manager"


def manager_status(name: str, reachable: bool, leading: dict[str, str]) -> str:
    """Swarm's MANAGER STATUS: ``Leader`` for the manager holding every component's Lease
    (``Leader (scheduler)`` and the like when the components are split between managers),
    else ``Reachable`` or ``Unreachable`` by the manager's own Lease."""
    held = sorted(component for component, holder in leading.items() if holder == name)
    if held and len(held) == len(leading):
        return "Leader"
    if held:
        return f"Leader ({', '.join(held)})"
    return "Reachable" if reachable else "Unreachable"
