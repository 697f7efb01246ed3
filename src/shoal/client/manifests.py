"""Reading manifests (multi-document YAML or JSON files, folders, stdin) and applying them.

``shoal apply`` and ``shoal server --apply`` share this: an object is created when absent
and updated when present.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shoal.api import REGISTRY, Kind, Object
from shoal.api.errors import AlreadyExists, ApiError, Conflict
from shoal.client._interface import Client, object_namespace

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class ManifestError(Exception):
    """A manifest that cannot be read or understood; the message names file and document."""


@dataclass(frozen=True)
class Manifest:
    source: str  # file name, or "-" for stdin
    index: int  # position of the document in its file, from 1
    kind: Kind
    object: Object

    @property
    def where(self) -> str:
        return f"{self.source} (document {self.index})"

    @property
    def description(self) -> str:
        return f'{self.kind.resource} "{self.object["metadata"].get("name", "")}"'


def files(path: str) -> list[str]:
    if path == "-":
        return ["-"]
    p = Path(path)
    if p.is_dir():
        return sorted(str(f) for f in p.iterdir() if f.suffix in MANIFEST_SUFFIXES and f.is_file())
    if not p.exists():
        raise ManifestError(f"{path}: no such file or directory")
    return [path]


def load(path: str) -> list[Manifest]:
    """Every object in ``path`` (a file, a folder of files, or ``-``), checked for a known
    apiVersion and kind and a name, in file order."""
    out: list[Manifest] = []
    for source in files(path):
        text = sys.stdin.read() if source == "-" else _read(source)
        for index, doc in _documents(source, text):
            out.extend(_objects(source, index, doc))
    return out


def _read(source: str) -> str:
    try:
        return Path(source).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(f"{source}: cannot read: {err}") from None


def _documents(source: str, text: str) -> Iterator[tuple[int, Any]]:
    try:
        for index, doc in enumerate(yaml.safe_load_all(text), start=1):
            if doc is not None:
                yield index, doc
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ManifestError(f"{source}: not valid YAML or JSON{where}: {problem}") from None


def _objects(source: str, index: int, doc: Any) -> Iterator[Manifest]:
    where = f"{source} (document {index})"
    if not isinstance(doc, dict):
        raise ManifestError(
            f"{where}: expected an object with apiVersion and kind, found {type(doc).__name__}"
        )
    if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            yield from _objects(source, index, item)
        return
    api_version, kind_name = doc.get("apiVersion"), doc.get("kind")
    if not api_version or not kind_name:
        missing = "apiVersion" if not api_version else "kind"
        raise ManifestError(f"{where}: {missing}: Required value")
    kind = REGISTRY.by_kind(str(api_version), str(kind_name))
    if kind is None:
        raise ManifestError(f'{where}: no kind "{kind_name}" is registered for version "{api_version}"')
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        raise ManifestError(f"{where}: metadata.name: Required value")
    yield Manifest(source, index, kind, doc)


async def apply(client: Client, manifest: Manifest, namespace: str | None = None) -> tuple[str, Object]:
    """Create the object, or update it when it exists; returns ("created"|"configured"|
    "unchanged", result). Whether an update changes anything is asked of the server (a
    dry run), so defaults and encodings such as a Secret's stringData compare as the server
    stores them. The update keeps fields other writers own (status) and retries when a
    concurrent writer wins the compare-and-swap."""
    kind, obj = manifest.kind, manifest.object
    ns = object_namespace(kind, obj, namespace)
    try:
        return "created", await client.create(kind, obj, ns)
    except AlreadyExists:
        pass
    for _attempt in range(5):
        current = await client.get(kind, obj["metadata"]["name"], ns)
        desired = {**obj, "metadata": {**current["metadata"], **_user_metadata(obj)}}
        if kind.namespaced:
            desired["metadata"]["namespace"] = ns
        try:
            preview = await client.update(kind, desired, dry_run=True)
            if _comparable(preview) == _comparable(current):
                return "unchanged", current
            return "configured", await client.update(kind, desired)
        except Conflict:
            continue
    raise ApiError(f"{manifest.description}: gave up after repeated conflicting writes")


def _user_metadata(obj: Object) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {
        k: v
        for k, v in meta.items()
        if k in ("name", "labels", "annotations", "finalizers", "ownerReferences")
    }


def _comparable(obj: Object) -> Object:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "generation")}
    return {**obj, "metadata": meta}
