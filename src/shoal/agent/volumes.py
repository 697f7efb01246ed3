"""A pod's volumes on the node, and the mounts of each container (the kubelet's volume manager).

Every volume gets a folder ``<root>/<pod uid>/<volume name>``, made before the first container
that mounts it starts and removed with the pod:

- ``emptyDir``: the folder itself; with ``medium: Memory`` a tmpfs (``sizeLimit`` its size).
- ``hostPath``: the host's path, checked or created as ``type`` says.
- ``secret`` and ``configMap``: a tmpfs, so secret bytes never reach a disk, holding one file per
  key (or per ``items`` entry, at its ``path``) with ``defaultMode``/``mode``. The files are
  written again at every container start, so a restarted container sees the object as it is
  then. They are mounted read-only, as in Kubernetes.

A source that cannot be read or made raises ``ConfigError``: the container waits in
``CreateContainerConfigError`` and the pod is retried, as with env.

Mounting tmpfs needs root (the docker runtime's agent has it); without it the folders are plain
ones with mode 0700, and the agent says so once in its log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from shoal.agent.env import ConfigError, read_source
from shoal.agent.runtimes import Mount
from shoal.api import Object
from shoal.api.kinds.configmap import CONFIG_MAP
from shoal.api.kinds.secret import SECRET
from shoal.api.quantity import parse_quantity
from shoal.client._interface import Client

log = logging.getLogger(__name__)

DEFAULT_MODE = 0o644  # Kubernetes' defaultMode for secret and configMap volumes
_HOST_PATH_FILE_TYPES = {"File": os.path.isfile, "Socket": os.path.exists, "CharDevice": os.path.exists}
_HOST_PATH_FILE_TYPES["BlockDevice"] = os.path.exists


def _relative(path: str, what: str) -> PurePosixPath:
    """A path inside a volume: relative, without ``..``; ConfigError otherwise."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts:
        raise ConfigError(f"{what} {path!r} must be a relative path without '..'")
    return pure


async def _run(*argv: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    return process.returncode or 0, err.decode(errors="replace").strip()


class Volumes:
    """Args:
    client: reads the Secrets and ConfigMaps the volumes name.
    root: where the pods' volume folders live (the agent's state directory).
    """

    def __init__(self, client: Client, root: Path) -> None:
        self.client = client
        self.root = root
        self._warned_tmpfs = False

    async def mounts(self, pod: Object, container: Mapping[str, Any]) -> tuple[Mount, ...]:
        """Prepare the volumes ``container`` mounts and return its mounts. Raises ConfigError."""
        volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or ()}
        prepared: dict[str, tuple[Path, bool]] = {}
        mounts: list[Mount] = []
        for mount in container.get("volumeMounts") or ():
            name = mount["name"]
            if name not in volumes:
                raise ConfigError(f"volumeMount {name!r}: the pod has no such volume")
            if name not in prepared:
                prepared[name] = await self._prepare(pod, volumes[name])
            host, read_only = prepared[name]
            if mount.get("subPath"):
                host = host / _relative(mount["subPath"], "subPath")
                if not host.exists():  # the kubelet makes a missing subPath a folder
                    host.mkdir(parents=True, exist_ok=True)
            mounts.append(
                Mount(str(host), mount["mountPath"], read_only=read_only or bool(mount.get("readOnly")))
            )
        return tuple(mounts)

    async def cleanup(self, pod_uid: str) -> None:
        """Unmount and delete the pod's volume folders (hostPath volumes are left alone)."""
        pod_dir = self._pod_dir(pod_uid)
        if not pod_dir.exists():
            return
        for path in sorted(pod_dir.iterdir()):
            if path.is_mount():
                code, err = await _run("umount", str(path))
                if code:
                    log.warning("cannot unmount %s: %s", path, err)
        await asyncio.to_thread(shutil.rmtree, pod_dir, True)

    # --- one volume ---

    async def _prepare(self, pod: Object, volume: Mapping[str, Any]) -> tuple[Path, bool]:
        """The volume's host path, and whether it is mounted read-only whatever the mount says."""
        name = volume["name"]
        if "hostPath" in volume:
            return self._host_path(name, volume["hostPath"]), False
        folder = self._pod_dir(pod["metadata"]["uid"]) / _relative(name, "volume name")
        if "emptyDir" in volume:
            source = volume["emptyDir"] or {}
            if source.get("medium") == "Memory":
                await self._tmpfs(folder, source.get("sizeLimit"))
            else:
                folder.mkdir(parents=True, exist_ok=True)
            return folder, False
        namespace = pod["metadata"].get("namespace") or "default"
        if "secret" in volume:
            source = volume["secret"]
            files = await self._read(SECRET, namespace, source.get("secretName", ""), source)
        elif "configMap" in volume:
            source = volume["configMap"]
            files = await self._read(CONFIG_MAP, namespace, source.get("name", ""), source)
        else:
            kinds = ", ".join(sorted(set(volume) - {"name"})) or "nothing"
            raise ConfigError(f"volume {name!r}: {kinds} volumes are not supported by the shoal agent yet")
        await self._tmpfs(folder, None)
        await asyncio.to_thread(self._write_files, folder, files)
        return folder, True

    def _host_path(self, name: str, source: Mapping[str, Any]) -> Path:
        path = Path(source.get("path", ""))
        kind = source.get("type") or ""
        if not path.is_absolute():
            raise ConfigError(f"volume {name!r}: hostPath {str(path)!r} must be absolute")
        if kind == "DirectoryOrCreate":
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        elif kind == "Directory" and not path.is_dir():
            raise ConfigError(f"volume {name!r}: hostPath type check failed: {path} is not a directory")
        elif kind in _HOST_PATH_FILE_TYPES and not _HOST_PATH_FILE_TYPES[kind](str(path)):
            raise ConfigError(f"volume {name!r}: hostPath type check failed: {path} is not a {kind}")
        return path

    async def _read(
        self, kind: Any, namespace: str, object_name: str, source: Mapping[str, Any]
    ) -> dict[PurePosixPath, tuple[bytes, int]]:
        """The files of a secret or configMap volume: relative path -> (bytes, mode)."""
        optional = bool(source.get("optional"))
        obj = await read_source(self.client, kind, namespace, object_name, optional)
        if obj is None:
            return {}
        data = _bytes_of(obj, object_name, is_config_map=kind is CONFIG_MAP)
        default_mode = int(source.get("defaultMode", DEFAULT_MODE))
        items = source.get("items")
        if not items:
            return {_relative(key, "key"): (value, default_mode) for key, value in data.items()}
        files = {}
        for item in items:
            key = item.get("key", "")
            if key not in data:
                if optional:
                    continue
                raise ConfigError(f"couldn't find key {key} in {kind.kind} {namespace}/{object_name}")
            files[_relative(item.get("path", ""), "items path")] = (
                data[key],
                int(item.get("mode", default_mode)),
            )
        return files

    @staticmethod
    def _write_files(folder: Path, files: Mapping[PurePosixPath, tuple[bytes, int]]) -> None:
        """Replace the folder's files with ``files``; each is written whole, then renamed."""
        keep = {relative.parts[0] for relative in files}
        for old in folder.iterdir():
            if old.name not in keep:  # a key removed from the object since the last start
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old)
                else:
                    old.unlink()
        for relative, (data, mode) in files.items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = target.with_name(f".{target.name}.tmp")
            descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(data)
            os.chmod(staging, mode)
            os.replace(staging, target)

    async def _tmpfs(self, folder: Path, size: str | None) -> None:
        if await asyncio.to_thread(_made_mount_point, folder):
            return
        options = "mode=0755"
        if size:
            with contextlib.suppress(ValueError):
                options += f",size={int(parse_quantity(size))}"
        code, err = await _run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder))
        if code:
            os.chmod(folder, 0o700)
            if not self._warned_tmpfs:
                self._warned_tmpfs = True
                log.warning("cannot mount tmpfs for volumes (%s): plain folders are used", err)

    def _pod_dir(self, pod_uid: str) -> Path:
        pod_dir = self.root / pod_uid
        if pod_dir.parent != self.root or not pod_uid or pod_uid.startswith("."):
            raise ConfigError(f"pod uid {pod_uid!r} cannot name a directory")
        return pod_dir


def _made_mount_point(folder: Path) -> bool:
    """Make the folder; True when something is mounted there already."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder.is_mount()


def _bytes_of(obj: Object, name: str, *, is_config_map: bool) -> dict[str, bytes]:
    """The data of a Secret (``data`` base64) or ConfigMap (``data`` text, ``binaryData`` base64)."""
    encoded, plain = ("binaryData", "data") if is_config_map else ("data", "stringData")
    out: dict[str, bytes] = {}
    for key, value in (obj.get(encoded) or {}).items():
        try:
            out[key] = base64.b64decode(value, validate=True)
        except binascii.Error as err:
            raise ConfigError(f"{name} key {key}: {err}") from None
    out.update({key: value.encode() for key, value in (obj.get(plain) or {}).items()})
    return out
