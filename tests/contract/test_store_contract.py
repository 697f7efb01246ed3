"""The store contract (DESIGN §3): every backend passes every test in this file.

A new backend joins by adding itself to ``_open_backend`` and ``FRESH_REVISION``. Each backend
also runs wrapped in the ``EncryptingStore`` (encryption at rest) with every key encrypted.
Prefixes are plain string prefixes: a watch or list on ``/a/`` sees ``/a/x`` but not ``/ab``;
the API layer always uses prefixes that end in ``/``.

Every test gets a fresh store (etcd: a fresh single-member cluster, which starts in a fraction
of a second). Revisions are counted from the backend's ``FRESH_REVISION``: etcd's empty store
is at revision 1, the embedded backends' at 0.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from shoal.security.keys import load_or_create
from shoal.store import (
    Compacted,
    Event,
    EventType,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    Store,
    StoreClosed,
    StoreError,
)
from shoal.store._watch import DEFAULT_MAX_BACKLOG, DEFAULT_RING_SIZE, HISTORY_PAGE
from shoal.store.encryption import EncryptingStore
from shoal.store.etcd import EtcdStore
from shoal.store.memory import MemoryStore
from shoal.store.sqlite import SqliteStore
from tests.etcd_cluster import EtcdCluster

OpenStore = Callable[..., Awaitable[Store]]
TIMEOUT = 5.0
BACKENDS = ["memory", "sqlite", "etcd"]
FRESH_REVISION = {"memory": 0, "sqlite": 0, "etcd": 1}  # the revision of an empty store


async def _open_backend(
    backend: str, tmp_path: Path, etcd: Callable[[], EtcdCluster], *, ring_size: int, max_backlog: int
) -> Store:
    if backend.endswith("+encrypted"):
        # Every key encrypted (not only Secrets): the wrapper must keep the whole contract.
        inner = await _open_backend(
            backend.removesuffix("+encrypted"), tmp_path, etcd, ring_size=ring_size, max_backlog=max_backlog
        )
        keyring, _ = load_or_create(tmp_path)
        return EncryptingStore(inner, keyring, prefixes=("",))
    if backend == "memory":
        return MemoryStore(max_backlog=max_backlog)
    if backend == "sqlite":
        path = str(tmp_path / "state.db")
        return await SqliteStore.open(path, ring_size=ring_size, max_backlog=max_backlog)
    if backend == "etcd":
        return await EtcdStore.open(etcd().endpoints, max_backlog=max_backlog, ring_size=ring_size)
    raise AssertionError(backend)


@pytest.fixture(params=[*BACKENDS, *(f"{backend}+encrypted" for backend in BACKENDS)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_revision(backend: str) -> int:
    return FRESH_REVISION[backend.removesuffix("+encrypted")]


@pytest.fixture
async def open_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[OpenStore]:
    """Opens a store of the backend under test; options a backend lacks are ignored. All the
    stores a test opens share one backend (one SQLite file, one etcd cluster)."""
    opened: list[Store] = []
    clusters: list[EtcdCluster] = []

    def etcd() -> EtcdCluster:
        if not clusters:
            clusters.append(request.getfixturevalue("etcd_cluster")())
        return clusters[0]

    async def open_(*, ring_size: int = DEFAULT_RING_SIZE, max_backlog: int = DEFAULT_MAX_BACKLOG) -> Store:
        store = await _open_backend(backend, tmp_path, etcd, ring_size=ring_size, max_backlog=max_backlog)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()


async def take(watch: AsyncIterator[Event], count: int) -> list[Event]:
    """The next ``count`` events, failing instead of hanging if they do not come."""
    events: list[Event] = []
    async with asyncio.timeout(TIMEOUT):
        while len(events) < count:
            events.append(await anext(watch))
    return events


async def take_until(watch: AsyncIterator[Event], revision: int) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(TIMEOUT):
        while not events or events[-1].revision < revision:
            events.append(await anext(watch))
    return events


def summary(events: list[Event]) -> list[tuple[str, str, bytes, int | None]]:
    return [(e.type.value, e.kv.key, e.kv.value, e.prev.mod_revision if e.prev else None) for e in events]


# -- single-key operations -------------------------------------------------------------------


async def test_create_then_get(store: Store) -> None:
    assert await store.get("/k") is None
    kv = await store.create("/k", b"one")
    assert kv == KeyValue("/k", b"one", kv.mod_revision, kv.mod_revision)
    assert await store.get("/k") == kv
    assert await store.current_revision() == kv.mod_revision


async def test_create_of_present_key_raises_key_exists_and_changes_nothing(store: Store) -> None:
    kv = await store.create("/k", b"one")
    with pytest.raises(KeyExists) as caught:
        await store.create("/k", b"two")
    assert caught.value.key == "/k"
    assert await store.get("/k") == kv
    assert await store.current_revision() == kv.mod_revision


async def test_update_is_compare_and_swap(store: Store) -> None:
    created = await store.create("/k", b"one")
    updated = await store.update("/k", b"two", expected_revision=created.mod_revision)
    assert updated.value == b"two"
    assert updated.create_revision == created.create_revision
    assert updated.mod_revision > created.mod_revision

    with pytest.raises(RevisionMismatch) as caught:
        await store.update("/k", b"stale", expected_revision=created.mod_revision)
    assert (caught.value.expected, caught.value.actual) == (created.mod_revision, updated.mod_revision)
    assert await store.get("/k") == updated
    assert await store.current_revision() == updated.mod_revision

    unconditional = await store.update("/k", b"three")
    assert unconditional.value == b"three" and unconditional.mod_revision > updated.mod_revision


async def test_delete_is_compare_and_swap_and_returns_the_last_value(store: Store) -> None:
    created = await store.create("/k", b"one")
    updated = await store.update("/k", b"two")
    with pytest.raises(RevisionMismatch):
        await store.delete("/k", expected_revision=created.mod_revision)
    assert await store.get("/k") == updated

    deleted = await store.delete("/k", expected_revision=updated.mod_revision)
    assert deleted.value == b"two"
    assert deleted.create_revision == created.create_revision
    assert deleted.mod_revision == await store.current_revision() > updated.mod_revision
    assert await store.get("/k") is None

    again = await store.create("/k", b"new life")
    assert again.create_revision == again.mod_revision > deleted.mod_revision


@pytest.mark.parametrize("expected", [None, 1])
async def test_update_or_delete_of_absent_key_raises_key_not_found(
    store: Store, fresh_revision: int, expected: int | None
) -> None:
    with pytest.raises(KeyNotFound):
        await store.update("/nope", b"x", expected_revision=expected)
    with pytest.raises(KeyNotFound):
        await store.delete("/nope", expected_revision=expected)
    assert await store.current_revision() == fresh_revision


async def test_revisions_increase_strictly_across_keys(store: Store) -> None:
    revisions = []
    for i in range(20):
        revisions.append((await store.create(f"/r/{i % 3}/{i}", b"v")).mod_revision)
        revisions.append((await store.update(f"/r/{i % 3}/{i}", b"w")).mod_revision)
        if i % 2:
            revisions.append((await store.delete(f"/r/{i % 3}/{i}")).mod_revision)
    assert revisions == sorted(set(revisions))
    assert revisions[-1] == await store.current_revision()


async def test_concurrent_writers_of_one_key_conflict_cleanly(store: Store) -> None:
    created = await asyncio.gather(
        *(store.create("/race", b"%d" % i) for i in range(8)), return_exceptions=True
    )
    winners = [kv for kv in created if isinstance(kv, KeyValue)]
    assert len(winners) == 1
    assert all(isinstance(e, KeyExists) for e in created if e not in winners)

    base = winners[0].mod_revision
    updated = await asyncio.gather(
        *(store.update("/race", b"u%d" % i, expected_revision=base) for i in range(8)), return_exceptions=True
    )
    winners = [kv for kv in updated if isinstance(kv, KeyValue)]
    assert len(winners) == 1
    assert all(isinstance(e, RevisionMismatch) for e in updated if e not in winners)
    assert await store.get("/race") == winners[0]


# -- lists -----------------------------------------------------------------------------------


async def test_list_by_prefix_is_sorted_and_isolated(store: Store) -> None:
    keys = ["/a/c", "/ab", "/a/a", "/b/a", "/a", "/a/b/c", "/a/b"]
    for key in keys:
        await store.create(key, key.encode())
    listed = await store.list("/a/")
    assert [kv.key for kv in listed.items] == ["/a/a", "/a/b", "/a/b/c", "/a/c"]
    assert [kv.value for kv in listed.items] == [b"/a/a", b"/a/b", b"/a/b/c", b"/a/c"]
    assert listed.revision == await store.current_revision()
    assert [kv.key for kv in (await store.list("")).items] == sorted(keys)
    assert (await store.list("/zzz/")).items == []


async def test_list_at_a_past_revision_sees_the_values_of_then(store: Store) -> None:
    one = await store.create("/p/1", b"one")
    two = await store.create("/p/2", b"two")
    then = await store.current_revision()
    await store.update("/p/1", b"one, later")
    await store.delete("/p/2")
    await store.create("/p/3", b"three")
    await store.create("/q/1", b"elsewhere")

    past = await store.list("/p/", revision=then)
    assert past.items == [one, two]
    assert past.revision == then
    assert [kv.value for kv in (await store.list("/p/")).items] == [b"one, later", b"three"]


async def test_list_at_every_past_revision_matches_a_model(store: Store, fresh_revision: int) -> None:
    """Random writes on few keys, so that keys are created, changed and deleted repeatedly."""
    rng = random.Random(7)
    model: dict[str, KeyValue] = {}
    snapshots = {fresh_revision: dict(model)}
    for _ in range(300):
        key = f"/m/{rng.randrange(8)}"
        if key not in model:
            model[key] = await store.create(key, rng.randbytes(4))
        elif rng.random() < 0.3:
            await store.delete(key)
            del model[key]
        else:
            model[key] = await store.update(key, rng.randbytes(4))
        await store.create(f"/other/{len(snapshots)}", b"noise")
        snapshots[await store.current_revision()] = dict(model)
    for revision, snapshot in snapshots.items():
        listed = await store.list("/m/", revision=revision)
        assert listed.items == [snapshot[k] for k in sorted(snapshot)], revision


async def test_list_at_a_future_revision_is_refused(store: Store) -> None:
    await store.create("/k", b"v")
    with pytest.raises(StoreError, match="future"):
        await store.list("/", revision=5)


# -- watch -----------------------------------------------------------------------------------


async def test_watch_delivers_history_then_live_changes_in_order(store: Store) -> None:
    start = await store.current_revision()
    await store.create("/w/a", b"1")
    await store.create("/w/b", b"1")
    await store.update("/w/a", b"2")
    watch = store.watch("/w/", start)
    history = await take(watch, 3)
    assert summary(history) == [
        ("PUT", "/w/a", b"1", None),
        ("PUT", "/w/b", b"1", None),
        ("PUT", "/w/a", b"2", history[0].revision),
    ]
    assert history[0].is_create and not history[2].is_create

    await store.delete("/w/b")
    await store.create("/w/c", b"1")
    live = await take(watch, 2)
    assert summary(live) == [("DELETE", "/w/b", b"1", history[1].revision), ("PUT", "/w/c", b"1", None)]
    revisions = [e.revision for e in history + live]
    assert revisions == list(range(start + 1, start + 6))


async def test_delete_event_carries_the_last_value_and_prev(store: Store) -> None:
    await store.create("/d/k", b"first")
    last = await store.update("/d/k", b"last")
    watch = store.watch("/d/", last.mod_revision)
    deleted = await store.delete("/d/k")
    [event] = await take(watch, 1)
    assert event.type is EventType.DELETE
    assert event.kv == deleted == KeyValue("/d/k", b"last", last.create_revision, deleted.mod_revision)
    assert event.prev == last


async def test_watch_prefix_is_a_plain_string_prefix(store: Store) -> None:
    watch = store.watch("/a/", await store.current_revision())
    for key in ["/ab", "/a", "/ab/x", "/b/a/", "/a/x", "/a/", "/a/y/z"]:
        await store.create(key, b"v")
    events = await take(watch, 3)
    assert [e.kv.key for e in events] == ["/a/x", "/a/", "/a/y/z"]


async def test_watch_from_a_future_revision_starts_there(store: Store) -> None:
    start = await store.current_revision()
    watch = store.watch("/", start + 2)
    for i in range(3):
        await store.create(f"/f/{i}", b"v")
    [event] = await take(watch, 1)
    assert event.revision == start + 3


async def test_watch_misses_nothing_with_many_concurrent_writers(store: Store) -> None:
    start = await store.current_revision()
    watch = store.watch("/c/", start)

    async def writer(n: int) -> None:
        for i in range(20):
            key = f"/c/{n}/{i % 4}"
            current = await store.get(key)
            if current is None:
                await store.create(key, b"%d" % i)
            elif i % 3 == 0:
                await store.delete(key, expected_revision=current.mod_revision)
            else:
                await store.update(key, b"%d" % i, expected_revision=current.mod_revision)

    async with asyncio.TaskGroup() as group:
        for n in range(16):
            group.create_task(writer(n))
    end = await store.current_revision()
    events = await take_until(watch, end)
    assert [e.revision for e in events] == list(range(start + 1, end + 1))

    # Replaying the events rebuilds exactly what the store holds, and each event's prev is
    # the replayed value it replaced.
    replayed: dict[str, KeyValue] = {}
    for event in events:
        assert event.prev == replayed.get(event.kv.key)
        if event.type is EventType.DELETE:
            del replayed[event.kv.key]
        else:
            replayed[event.kv.key] = event.kv
    assert (await store.list("/c/")).items == [replayed[k] for k in sorted(replayed)]


async def test_watch_from_an_old_revision_catches_up_while_writes_continue(open_store: OpenStore) -> None:
    """Long history (beyond SQLite's in-memory ring, over several history pages) read while
    writers keep going: the switch to live events must neither skip nor repeat one."""
    store = await open_store(ring_size=16)
    start = await store.current_revision()
    for i in range(2500):
        await store.create(f"/h/{i:05d}", b"v")
        if i % 10 == 0:
            await store.create(f"/elsewhere/{i}", b"v")

    async def writer() -> None:
        for i in range(300):
            await store.create(f"/h/late/{i:04d}", b"v")

    watch = store.watch("/h/", start)
    async with asyncio.TaskGroup() as group:
        group.create_task(writer())
        events = await take(watch, 2500 + 300)
    keys = [e.kv.key for e in events]
    assert keys[:2500] == [f"/h/{i:05d}" for i in range(2500)]
    assert sorted(keys[2500:]) == [f"/h/late/{i:04d}" for i in range(300)]
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions))
    extra = await store.create("/h/zz", b"v")
    assert (await take(watch, 1))[0].kv == extra


@pytest.mark.parametrize("extra", [-1, 0, 1])
async def test_watch_history_ending_at_a_page_boundary(
    open_store: OpenStore, fresh_revision: int, extra: int
) -> None:
    """History is read in pages; a page that ends just before the newest event must not be
    mistaken for the end of history."""
    store = await open_store(ring_size=1)
    count = HISTORY_PAGE + extra
    for i in range(count):
        await store.create(f"/b/{i:05d}", b"v")
    events = await take(store.watch("/b/", fresh_revision), count)
    assert [e.revision for e in events] == list(range(fresh_revision + 1, fresh_revision + count + 1))


async def test_watcher_that_falls_too_far_behind_is_ended(open_store: OpenStore) -> None:
    store = await open_store(max_backlog=50)
    watch = store.watch("/", await store.current_revision())
    await store.create("/first", b"v")
    await take(watch, 1)  # now live
    for i in range(60):
        await store.create(f"/k/{i}", b"v")
    with pytest.raises(StoreClosed, match="behind"):
        await take(watch, 60)
    # Others are unaffected and the store keeps working.
    fresh = store.watch("/", await store.current_revision())
    created = await store.create("/after", b"v")
    assert (await take(fresh, 1))[0].kv == created


async def test_aclose_stops_a_watch(store: Store) -> None:
    watch = store.watch("/", 0)
    await store.create("/k", b"v")
    await take(watch, 1)
    await watch.aclose()  # type: ignore[attr-defined]
    await store.create("/k2", b"v")
    with pytest.raises(StopAsyncIteration):
        await anext(watch)


# -- compaction ------------------------------------------------------------------------------


async def test_compacted_revisions_are_refused_for_list_and_watch(store: Store, fresh_revision: int) -> None:
    rng = random.Random(3)
    model: dict[str, KeyValue] = {}
    snapshots: dict[int, dict[str, KeyValue]] = {}
    for i in range(200):
        key = f"/x/{rng.randrange(6)}"
        if key not in model:
            model[key] = await store.create(key, b"%d" % i)
        elif rng.random() < 0.3:
            await store.delete(key)
            del model[key]
        else:
            model[key] = await store.update(key, b"%d" % i)
        snapshots[await store.current_revision()] = dict(model)
    last = fresh_revision + 200
    point = fresh_revision + 120
    await store.compact(point)

    with pytest.raises(Compacted, match=f"revision {point - 1} is too old") as caught:
        await store.list("/x/", revision=point - 1)
    assert (caught.value.requested, caught.value.compacted) == (point - 1, point)
    with pytest.raises(Compacted):
        await take(store.watch("/x/", fresh_revision + 5), 1)

    # Everything at and after the compaction point still reads as before.
    for revision in range(point, last + 1):
        snapshot = snapshots[revision]
        listed = await store.list("/x/", revision=revision)
        assert listed.items == [snapshot[k] for k in sorted(snapshot)], revision
    events = await take_until(store.watch("/x/", point), last)
    assert [e.revision for e in events] == list(range(point + 1, last + 1))
    replayed = dict(snapshots[point])
    for event in events:
        assert event.prev == replayed.get(event.kv.key)
        if event.type is EventType.DELETE:
            del replayed[event.kv.key]
        else:
            replayed[event.kv.key] = event.kv

    await store.compact(point - 10)  # an older point changes nothing
    assert len((await store.list("/x/", revision=point)).items) == len(snapshots[point])
    with pytest.raises(StoreError, match="cannot compact"):
        await store.compact(10_000)


async def test_compact_to_now_keeps_the_current_values(store: Store) -> None:
    await store.create("/k/1", b"a")
    await store.create("/k/2", b"b")
    await store.delete("/k/2")
    head = await store.current_revision()
    await store.compact(head)
    assert [kv.key for kv in (await store.list("/k/", revision=head)).items] == ["/k/1"]
    assert await store.current_revision() == head
    watch = store.watch("/k/", head)
    created = await store.create("/k/3", b"c")
    assert (await take(watch, 1))[0].kv == created


# -- closing ---------------------------------------------------------------------------------


async def test_close_ends_watchers_with_store_closed(store: Store) -> None:
    live = store.watch("/", await store.current_revision())
    await store.create("/k", b"v")
    await take(live, 1)
    waiting = asyncio.ensure_future(anext(live))
    await asyncio.sleep(0)  # let it start waiting; the close must wake it either way
    await store.close()
    with pytest.raises(StoreClosed):
        async with asyncio.timeout(TIMEOUT):
            await waiting
    with pytest.raises(StoreClosed):
        await take(store.watch("/", 0), 1)
    with pytest.raises(StoreClosed):
        await store.create("/k2", b"v")
    with pytest.raises(StoreClosed):
        await store.get("/k")
