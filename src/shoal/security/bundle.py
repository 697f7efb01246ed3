"""What a joining manager receives: the cluster's secrets that live beside the store, not in it.

Every manager signs node certificates with the cluster CA, decrypts Secrets with the cluster
keyring and reaches the same store; ``shoal join --manager`` therefore gets the CA key, the
admin client certificate (so each manager writes a working kubeconfig), the keyring files
exactly as on disk (still sealed under autolock: that manager then needs ``shoal unlock``
too) and the store's URL. The bundle crosses only the connection pinned to the CA, and only
after the manager token's secret was checked (``security.join``).

A manager whose store lives in its own file (sqlite, memory) cannot share it: such a cluster
refuses manager joins, and says how to start one that can.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shoal.api import Object
from shoal.api.errors import BadRequest, Conflict
from shoal.security import pki
from shoal.security.keys import KEY_DIR, PLAIN_FILE, SEALED_FILE

SHARED_SCHEMES = ("etcd",)
MEMBER_CONFIG_FILE = "etcd-member.json"  # manager.etcd_member.CONFIG_FILE (not imported: layering)
# Relative to the data dir; the serving certificate is left out: each manager makes its own.
FILES = (
    "pki/ca.crt",
    "pki/ca.key",
    "pki/admin.crt",
    "pki/admin.key",
    f"{KEY_DIR}/{PLAIN_FILE}",
    f"{KEY_DIR}/{SEALED_FILE}",
)
SECRET_FILES = ("pki/ca.key", "pki/admin.key", f"{KEY_DIR}/{PLAIN_FILE}", f"{KEY_DIR}/{SEALED_FILE}")


def shared(store_url: str) -> bool:
    return urlsplit(store_url).scheme in SHARED_SCHEMES


def make(data_dir: Path, store_url: str) -> Object:
    """The bundle of the manager at ``data_dir`` over ``store_url``; Conflict when that store
    cannot be shared."""
    if not shared(store_url):
        where = store_url or f"sqlite:///{data_dir / 'state.db'}"
        raise Conflict(
            f"this cluster keeps its state in {where}, which only this manager can open: more "
            "managers need a shared store (start the first manager with "
            "`shoal init --store etcd://HOST:2379[,HOST:2379...]`, or restore a backup into one)"
        )
    files = {
        name: base64.b64encode((data_dir / name).read_bytes()).decode()
        for name in FILES
        if (data_dir / name).exists()
    }
    # Managers that run etcd members beside them (`--ha`): the joining one adds its own.
    embedded = (data_dir / MEMBER_CONFIG_FILE).exists()
    return {"storeURL": store_url, "files": files, "embeddedEtcd": embedded}


def save(data_dir: Path, bundle: Any, server: str) -> str:
    """Write ``bundle`` under ``data_dir`` (keys 0600); the store URL it names. A bundle that
    is not one, or names files it may not, is refused whole before anything is written."""
    if not isinstance(bundle, dict) or not isinstance(bundle.get("storeURL"), str):
        raise BadRequest(f"the manager at {server} sent no manager bundle with its answer")
    files = bundle.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise BadRequest(f"the manager at {server} sent a malformed manager bundle")
    unknown = sorted(set(files) - set(FILES))
    if unknown or "pki/ca.key" not in files:
        raise BadRequest(
            f"the manager at {server} sent a manager bundle with unexpected files ({', '.join(unknown)}) "
            "or without the CA key"
        )
    try:
        contents = {name: base64.b64decode(text, validate=True) for name, text in files.items()}
    except ValueError:
        raise BadRequest(f"the manager at {server} sent a manager bundle that is not base64") from None
    existing = data_dir / "pki/ca.crt"
    if existing.exists() and existing.read_bytes() != contents.get("pki/ca.crt"):
        raise Conflict(
            f"{data_dir} already holds another cluster's CA ({existing}): join as a manager with a "
            "fresh --data-dir"
        )
    for name, content in contents.items():
        path = data_dir / name
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        pki.write_atomic(path, content, 0o600 if name in SECRET_FILES else 0o644)
    return str(bundle["storeURL"])
