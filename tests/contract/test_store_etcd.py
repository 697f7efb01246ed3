"""What the etcd backend promises beyond the shared contract, against real etcd clusters:
its revisions are etcd's, it keeps working while a minority of members is down, it says so
(in bounded time) when the quorum is lost, and its watches survive members dying."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from shoal.store import Compacted, Event, Store, StoreClosed, StoreUnavailable, open_store
from shoal.store._watch import DEFAULT_RING_SIZE
from shoal.store.compactor import run_compactor
from shoal.store.etcd import EtcdStore, parse_endpoints, prefix_range
from tests.etcd_cluster import EtcdCluster, EtcdMember, _free_ports

MakeCluster = Callable[..., EtcdCluster]
TIMEOUT = 15.0


async def take_until(watch: AsyncIterator[Event], revision: int) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(TIMEOUT):
        while not events or events[-1].revision < revision:
            events.append(await anext(watch))
    return events


async def healthy(cluster: EtcdCluster) -> None:
    """Wait (off the event loop, so watches keep running) until the running members serve."""
    await asyncio.to_thread(cluster.wait_healthy)


def assert_complete(events: list[Event], after: int, head: int) -> None:
    """Every revision in (after, head], once, in order: only this test writes to the cluster,
    and every write of it is under the watched prefix."""
    assert [e.revision for e in events] == list(range(after + 1, head + 1))


async def test_revisions_are_etcds_own(etcd_cluster: MakeCluster) -> None:
    cluster = etcd_cluster()
    store = await open_store(cluster.url)
    try:
        created = await store.create("/registry/core/pods/default/web", b"one")
        updated = await store.update("/registry/core/pods/default/web", b"two")
        seen = await asyncio.to_thread(cluster.get, "/registry/core/pods/default/web")
        assert seen is not None
        assert (seen["value"], seen["create_revision"], seen["mod_revision"]) == (
            b"two",
            created.mod_revision,
            updated.mod_revision,
        )
        header = (await asyncio.to_thread(cluster.etcdctl, "get", "/registry/", "--prefix"))["header"]
        assert (await store.list("/registry/")).revision == header["revision"] == updated.mod_revision
        assert await store.current_revision() == header["revision"]

        # Keys written by others (etcdctl) are read back as they are.
        await asyncio.to_thread(cluster.etcdctl, "put", "/registry/ünïcode", "from etcdctl")
        kv = await store.get("/registry/ünïcode")
        assert kv is not None and kv.value == b"from etcdctl"
    finally:
        await store.close()


async def test_unreachable_endpoints_fail_in_bounded_time_with_a_clear_error() -> None:
    endpoints = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))  # nothing listens there
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="no quorum / unreachable") as caught:
        await EtcdStore.open(endpoints, request_timeout=1.0)
    assert time.monotonic() - started < 5
    assert endpoints in str(caught.value)


@pytest.mark.parametrize("cached", [True, False], ids=["watch-cache", "stream-per-watch"])
async def test_a_cluster_keeps_serving_while_each_member_in_turn_is_killed(
    etcd_cluster: MakeCluster, caplog: pytest.LogCaptureFixture, cached: bool
) -> None:
    """Every member is SIGKILLed once (the leader among them), so every watch stream breaks
    at least once wherever the channel placed it; the watches resume without loss or repeat.
    With the watch cache, the one stream that breaks is the cache's feed (on every key); without
    it (no ring), each watch has a stream of its own."""
    caplog.set_level(logging.WARNING, logger="shoal.store._etcd_watch")
    cluster = etcd_cluster(members=3)
    store = await EtcdStore.open(cluster.endpoints, ring_size=DEFAULT_RING_SIZE if cached else 0)
    try:
        start = await store.current_revision()
        # Several watches, so that the channel's round robin spreads them over the members;
        # distinct prefixes (all matching every key written) tell their logs apart.
        prefixes = ["/", "/r", "/ro", "/rol", "/roll", "/roll/"]
        watches = [store.watch(prefix, start) for prefix in prefixes]
        first = await store.create("/roll/first", b"v")
        for watch in watches:  # each opens its stream on its first read
            assert [e.kv for e in await take_until(watch, first.mod_revision)] == [first]
        for round_, member in enumerate(cluster.members):
            await kill_one(cluster, member)
            for i in range(5):  # writes and reads while the member is down
                key = f"/roll/{round_}/{i}"
                created = await store.create(key, b"v")
                assert await store.get(key) == created
            member.start()
            await healthy(cluster)
            await store.update(f"/roll/{round_}/0", b"after restart")
        head = await store.current_revision()
        for watch in watches:
            events = await take_until(watch, head)
            assert_complete(events, first.mod_revision, head)
        streams = [""] if cached else prefixes
        broke = {prefix for prefix in streams if f"watch on {prefix!r} broke" in caplog.text}
        assert broke == set(streams)
    finally:
        await store.close()


async def kill_one(cluster: EtcdCluster, member: EtcdMember) -> None:
    """SIGKILL ``member`` and wait until the others serve: at once after a follower; after an
    election when it led (a write sent in between would be lost with the old leader and time
    out). The wait also gives the store's channel the moment it needs to see the connection
    close: a write sent on a connection to a member that just died fails with StoreUnavailable,
    by design, since it cannot know whether the write was applied."""
    member.kill()
    await healthy(cluster)


@contextlib.contextmanager
def logged(logger: str, text: str) -> Iterator[asyncio.Event]:
    """An event set when ``logger`` logs a message containing ``text`` (at INFO or above)."""
    seen = asyncio.Event()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                seen.set()

    handler, target = Handler(), logging.getLogger(logger)
    level = target.level
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        target.removeHandler(handler)
        target.setLevel(level)


async def test_without_quorum_calls_fail_in_bounded_time_and_the_store_resumes_after(
    etcd_cluster: MakeCluster,
) -> None:
    cluster = etcd_cluster(members=3)
    store = await open_store(cluster.url)
    try:
        start = await store.current_revision()
        watch = store.watch("/q/", start)
        before = await store.create("/q/before", b"v")
        assert [e.kv for e in await take_until(watch, before.mod_revision)] == [before]
        with logged("shoal.store.compactor", "compaction skipped") as skipped:
            async with asyncio.TaskGroup() as group:
                compactor = group.create_task(run_compactor(store, interval=0.05, keep=1000))
                await lose_the_quorum_and_regain_it(cluster, store, skipped)
                assert not compactor.done()  # it met the outage too, and went on
                compactor.cancel()
        assert await store.get("/q/lost") is None
        assert await asyncio.to_thread(cluster.get, "/q/lost") is None
        after = await store.create("/q/after", b"v")
        assert after.mod_revision == before.mod_revision + 1  # nothing was written between
        assert [e.kv for e in await take_until(watch, after.mod_revision)] == [after]
    finally:
        await store.close()


async def lose_the_quorum_and_regain_it(cluster: EtcdCluster, store: Store, skipped: asyncio.Event) -> None:
    # The leader is among the two killed: a leader that survived could still commit the
    # refused write once the others return, which is why StoreUnavailable says "may".
    leader = await asyncio.to_thread(cluster.leader)
    follower = next(m for m in cluster.members if m is not leader)
    leader.kill()
    follower.kill()

    began = time.monotonic()
    with pytest.raises(StoreUnavailable, match="no quorum / unreachable") as caught:
        await store.create("/q/lost", b"v")
    assert time.monotonic() - began < 10
    assert str(caught.value).startswith(f"etcd at {cluster.endpoints}: ")
    assert "may or may not have been applied" in str(caught.value)
    began = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.get("/q/before")
    assert time.monotonic() - began < 10
    async with asyncio.timeout(TIMEOUT):
        await skipped.wait()

    leader.start()
    follower.start()
    await healthy(cluster)


async def test_run_compactor_makes_old_revisions_compacted(etcd_cluster: MakeCluster) -> None:
    store = await open_store(etcd_cluster().url)
    try:
        old = await store.current_revision()
        for i in range(20):
            await store.create(f"/c/{i:02d}", b"v")
        head = await store.current_revision()
        old_watch = store.watch("/c/", old)
        with logged("shoal.store.compactor", "compacted") as compacted:
            async with asyncio.TaskGroup() as group:
                compactor = group.create_task(run_compactor(store, interval=0.01, keep=5))
                async with asyncio.timeout(TIMEOUT):
                    await compacted.wait()
                compactor.cancel()
        with pytest.raises(Compacted) as caught:
            await store.list("/c/", revision=old)
        assert (caught.value.requested, caught.value.compacted) == (old, head - 5)
        with pytest.raises(Compacted):
            await anext(old_watch)
        kept = await store.list("/c/", revision=head - 5)
        assert [kv.key for kv in kept.items] == [f"/c/{i:02d}" for i in range(15)]
    finally:
        await store.close()


async def test_endpoint_names_are_resolved_and_every_address_used(etcd_cluster: MakeCluster) -> None:
    cluster = etcd_cluster()
    port = cluster.members[0].client_port
    store = await open_store(f"etcd://localhost:{port}")  # 127.0.0.1, and ::1 where nothing listens
    try:
        created = await store.create("/named", b"v")
        assert await store.get("/named") == created
    finally:
        await store.close()


def test_endpoints_and_prefixes_map_onto_etcd() -> None:
    assert parse_endpoints("10.0.0.1:2379, etcd-2:22379,[::1]:2379,etcd-3") == [
        ("10.0.0.1", 2379),
        ("etcd-2", 22379),
        ("::1", 2379),
        ("etcd-3", 2379),
    ]
    for bad in ["", "host:port", "10.0.0.1:99999", ":2379"]:
        with pytest.raises(ValueError):
            parse_endpoints(bad)
    assert prefix_range("/a/") == (b"/a/", b"/a0")
    assert prefix_range("") == (b"\0", b"\0")  # every key
    assert prefix_range("/é") == ("/é".encode(), "/é".encode()[:-1] + bytes(["/é".encode()[-1] + 1]))


async def test_close_during_an_outage_ends_pending_calls_and_watches(etcd_cluster: MakeCluster) -> None:
    cluster = etcd_cluster()
    store = await open_store(cluster.url)
    watch = store.watch("/", await store.current_revision())
    created = await store.create("/k", b"v")
    assert [e.kv for e in await take_until(watch, created.mod_revision)] == [created]
    cluster.members[0].kill()
    waiting = asyncio.ensure_future(anext(watch))
    reading = asyncio.ensure_future(store.get("/k"))  # waits for a member, up to its deadline
    await asyncio.sleep(0)  # let both start waiting; the close must end them either way
    async with asyncio.timeout(2):
        await store.close()
        for pending in (waiting, reading):
            with pytest.raises(StoreClosed):
                await pending
