"""Kubeconfig files: the server writes one at start, the CLI and kubectl read it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_DATA_DIR = Path(os.environ.get("SHOAL_DATA_DIR", str(Path.home() / ".shoal")))
CONTEXT = "shoal"


@dataclass(frozen=True)
class Connection:
    server: str
    namespace: str = "default"


def write(path: Path, server: str) -> None:
    """Write a kubeconfig that points kubectl and shoal at ``server``; atomically, so a
    reader never sees half a file."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": "admin", "user": {}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "admin", "namespace": "default"}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
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
        return Connection(cluster["server"], context.get("namespace") or "default")
    except (AttributeError, KeyError, StopIteration, TypeError):
        raise KubeconfigError(f"kubeconfig {path} has no usable current context") from None
