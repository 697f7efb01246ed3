"""HttpClient over several managers: two real API servers over one store, one stopped."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from shoal.api import REGISTRY
from shoal.api.errors import ServiceUnavailable
from shoal.client.http import HttpClient
from shoal.server.resources import Resources
from shoal.server.run import Listening, bind, listening
from shoal.store.memory import MemoryStore

CONFIG_MAP = REGISTRY.by_resource("", "v1", "configmaps")


def config_map(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}


@contextlib.asynccontextmanager
async def two_managers() -> AsyncIterator[tuple[contextlib.AsyncExitStack, Listening, Listening]]:
    """Two API servers over one store; the first can be shut down with the stack it came in."""
    store = MemoryStore()
    resources = Resources(store)
    await resources.bootstrap()
    async with listening(resources) as second, contextlib.AsyncExitStack() as first_stack:
        first = await first_stack.enter_async_context(listening(resources))
        yield first_stack, first, second
    await store.close()


async def test_a_stopped_manager_is_left_for_the_next_one() -> None:
    assert CONFIG_MAP is not None
    async with two_managers() as (first_stack, first, second):
        client = HttpClient(first.url, fallbacks=[first.url, second.url])
        try:
            assert client.servers == [first.url, second.url]  # the current one is not repeated
            await client.create(CONFIG_MAP, config_map("before"))
            await first_stack.aclose()  # the first manager is gone, its port closed
            # The refused connection is retried on the second manager: the caller sees success.
            await client.create(CONFIG_MAP, config_map("after"))
            assert client.server == second.url
            names = [i["metadata"]["name"] for i in (await client.list(CONFIG_MAP, "default"))["items"]]
            assert names == ["after", "before"]
        finally:
            await client.close()


async def test_with_every_manager_gone_the_error_names_them_all() -> None:
    assert CONFIG_MAP is not None
    dead = []
    for _ in range(2):  # ports that were just free: nothing listens on them
        sock = bind("127.0.0.1", 0)
        dead.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
        sock.close()
    client = HttpClient(dead[0], fallbacks=dead)
    try:
        with pytest.raises(ServiceUnavailable) as refused:
            await client.get(CONFIG_MAP, "x", "default")
        assert dead[0] in refused.value.message and dead[1] in refused.value.message
    finally:
        await client.close()


async def test_a_refusal_is_an_answer_and_does_not_move_the_client() -> None:
    assert CONFIG_MAP is not None
    async with two_managers() as (_stack, first, second):
        client = HttpClient(first.url, fallbacks=[second.url])
        try:
            with pytest.raises(Exception, match="not found"):
                await client.get(CONFIG_MAP, "missing", "default")
            assert client.server == first.url
        finally:
            await client.close()
