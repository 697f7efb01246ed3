from __future__ import annotations

from urllib.parse import urlparse

from shoal.store._interface import Store


async def open_store(url: str) -> Store:
    """Open the store named by ``url`` (``memory://``, ``sqlite:///path`` or
    ``etcd://host:port[,host:port...]``)."""
    parsed = urlparse(url)
    if parsed.scheme == "memory":
        from shoal.store.memory import MemoryStore

        return MemoryStore()
    if parsed.scheme == "sqlite":
        from shoal.store.sqlite import SqliteStore

        path = parsed.path if not parsed.netloc else parsed.netloc + parsed.path
        if not path:
            raise ValueError(
                f"store URL {url!r}: sqlite needs a file path, as in sqlite:///var/lib/shoal/state.db"
            )
        return await SqliteStore.open(path)
    if parsed.scheme == "etcd":
        from shoal.store.etcd import EtcdStore

        if parsed.path not in ("", "/") or parsed.query:
            raise ValueError(
                f"store URL {url!r}: etcd takes only endpoints, as in etcd://10.0.0.1:2379,10.0.0.2:2379"
            )
        return await EtcdStore.open(parsed.netloc)
    raise ValueError(
        f"store URL {url!r}: unknown scheme {parsed.scheme!r} (use memory://, sqlite:///PATH or etcd://HOST:PORT)"
    )
