"""How objects are kept in the store: JSON bytes without resourceVersion, which is the
store's revision of the key and is stamped on read (as Kubernetes does on etcd)."""

from __future__ import annotations

import orjson

from shoal.api import Object
from shoal.store import KeyValue


def decode(kv: KeyValue) -> Object:
    """An object as stored, stamped with the revision of its last write."""
    obj: Object = orjson.loads(kv.value)
    obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
    return obj


def encode(obj: Object) -> bytes:
    meta = obj["metadata"]
    rv = meta.pop("resourceVersion", None)
    try:
        return orjson.dumps(obj)
    finally:
        if rv is not None:
            meta["resourceVersion"] = rv
