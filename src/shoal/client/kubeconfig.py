"""Kubeconfig files: the server writes one at start, the CLI and kubectl read it.

Credentials are kept inline, as kubectl writes them: ``certificate-authority-data`` (the cluster
CA), ``client-certificate-data``/``client-key-data`` (a user's certificate) and ``token`` (a
bearer token), base64 where kubectl expects it. Paths (``certificate-authority``, ...) are read
too, relative to the file.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_DATA_DIR = Path(os.environ.get("SHOAL_DATA_DIR", str(Path.home() / ".shoal")))
CONTEXT = "shoal"


@dataclass(frozen=True)
class Credentials:
    """How a client proves who it is and whom it trusts (PEM bytes); all optional."""

    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None


@dataclass(frozen=True)
class Connection:
    server: str
    namespace: str = "default"
    credentials: Credentials = Credentials()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write(path: Path, server: str, credentials: Credentials = Credentials(), user: str = "admin") -> None:
    """Write a kubeconfig that points kubectl and shoal at ``server`` as ``user``; atomically,
    so a reader never sees half a file, and readable by its owner only (it holds keys)."""
    cluster: dict[str, Any] = {"server": server}
    if credentials.ca_pem:
        cluster["certificate-authority-data"] = _b64(credentials.ca_pem)
    user_entry: dict[str, Any] = {}
    if credentials.cert_pem and credentials.key_pem:
        user_entry["client-certificate-data"] = _b64(credentials.cert_pem)
        user_entry["client-key-data"] = _b64(credentials.key_pem)
    if credentials.token:
        user_entry["token"] = credentials.token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user, "namespace": "default"}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(yaml.safe_dump(config, sort_keys=False))
    tmp.replace(path)


class KubeconfigError(Exception):
    pass


def read(path: Path) -> Connection:
    """The server and namespace of the current context of a kubeconfig file."""
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise KubeconfigError(
            f"no kubeconfig at {path}: start a server with `shoal server`, or pass --server URL"
        ) from None
    except (OSError, yaml.YAMLError) as err:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {err}") from None
    try:
        current = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(
            (u.get("user") or {} for u in config.get("users") or () if u["name"] == context.get("user")), {}
        )
        credentials = Credentials(
            ca_pem=_pem(path, cluster, "certificate-authority"),
            cert_pem=_pem(path, user, "client-certificate"),
            key_pem=_pem(path, user, "client-key"),
            token=user.get("token") or None,
        )
        return Connection(cluster["server"], context.get("namespace") or "default", credentials)
    except (AttributeError, KeyError, StopIteration, TypeError):
        raise KubeconfigError(f"kubeconfig {path} has no usable current context") from None


def _pem(path: Path, entry: dict[str, Any], field: str) -> bytes | None:
    """``<field>-data`` (base64) or ``<field>`` (a file, relative to the kubeconfig)."""
    if entry.get(f"{field}-data"):
        try:
            return base64.b64decode(entry[f"{field}-data"], validate=True)
        except (binascii.Error, TypeError):
            raise KubeconfigError(f"kubeconfig {path}: {field}-data is not base64") from None
    if entry.get(field):
        try:
            return (path.parent / str(entry[field])).read_bytes()
        except OSError as err:
            raise KubeconfigError(f"kubeconfig {path}: cannot read {field} {entry[field]}: {err}") from None
    return None
