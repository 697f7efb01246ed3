from __future__ import annotations

from urllib.parse import urlparse

from shoal.store._interface import Store


async def open_store(url: str) -> Store:
    """Open the store named by ``url`` (``memory://`` or ``sqlite:///path``)."""
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
    raise ValueError(f"store URL {url!r}: unknown scheme {parsed.scheme!r} (use memory:// or sqlite:///PATH)")
