"""The etcd v3 backend: the store kept by an etcd cluster, for several managers (DESIGN §3).

Keys are etcd keys (the same strings, UTF-8) and revisions are etcd's own: a KeyValue's
revisions are etcd's ``create_revision``/``mod_revision``, and what a list or
``current_revision()`` reports is the revision in etcd's response header. etcd counts from
1 (the empty store), not 0 as the embedded backends do. Every write is one etcd transaction
whose comparisons carry the contract's preconditions, so a compare-and-swap is atomic in etcd.

Connection. One gRPC channel to every endpoint listed (``round_robin`` over the members'
addresses), calls marked ``wait_for_ready``: a member that is down is skipped, a request waits
for some member to be reachable rather than failing at once, and the channel reconnects to a
restarted member by itself. Calls carry etcd's require-leader header, so a member cut off
from the quorum refuses at once ("no leader") instead of holding the call.

Timeouts. Every call has a deadline (``request_timeout``, 5 s by default) and fails with
StoreUnavailable when it passes, naming the endpoints and the cause; nothing waits forever and
no gRPC exception escapes. Within the deadline a read is retried on any transient error, but
a write only where etcd refused it before proposing it (no leader, too many requests): a write
whose fate is unknown (its member died, the deadline passed) may still be applied, so it is
reported, not repeated.

Watches. One etcd watch stream over every key feeds a ring of recent events and the watchers
of this process (``_etcd_watch.WatchCache``, like kube-apiserver's watch cache); a watch that
starts before the ring gets a stream of its own. A stream that breaks while the store is open
(its member died, lost the quorum) is opened again from the last revision it delivered, as
etcd's own Go client does; the consumer sees neither a gap nor a repeat.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from aetcd import rpc

from shoal.store._etcd_watch import CachedWatch, EtcdWatch, WatchCache
from shoal.store._etcd_wire import (
    REQUIRE_LEADER,
    RETRY_FIRST,
    RETRY_MAX,
    encode_key,
    key_value,
    prefix_range,
    watch_request,
)
from shoal.store._etcd_wire import (
    compare as etcd_compare,
)
from shoal.store._interface import (
    Compacted,
    KeyExists,
    KeyValue,
    ListResult,
    StoreClosed,
    StoreError,
    StoreUnavailable,
)
from shoal.store._rules import check_precondition
from shoal.store._watch import DEFAULT_MAX_BACKLOG, DEFAULT_RING_SIZE

log = logging.getLogger(__name__)

DEFAULT_PORT = 2379
DEFAULT_REQUEST_TIMEOUT = 5.0
LIST_PAGE = 1000  # keys per Range of a list: bounds each response however big the prefix

_CHANNEL_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),
    # gRPC's default reconnect back-off grows to 2 minutes; a restarted member should be back
    # in use within seconds.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # Notice a member that vanished without closing its connections (a partition). etcd
    # refuses pings more frequent than every 5 s (--grpc-keepalive-min-time).
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.max_pings_without_data", 0),  # a quiet watch stream must stay checked too
    # A page of a list can exceed gRPC's default 4 MiB (etcd allows 1.5 MiB per value).
    ("grpc.max_receive_message_length", -1),
]

# etcd's error texts: the gRPC status code alone does not tell these apart.
_COMPACTED = "required revision has been compacted"
_FUTURE = "required revision is a future revision"
_REFUSED_BEFORE_PROPOSING = ("etcdserver: no leader", "etcdserver: too many requests")
# How etcd says it has no quorum (or lost its leader) when the error's code does not: the raft
# request timed out inside etcd, or the server-side context expired before a leader answered.
_NO_QUORUM_SIGNS = ("request timed out", "leader changed", "context deadline exceeded", "no leader")
_TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)


class _Refused(StoreError):
    """etcd answered that the request itself cannot be served (a compacted or future
    revision); the caller turns it into the contract's error."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class EtcdStore:
    """A store in an etcd v3 cluster; open it with ``EtcdStore.open("host:port,...")``."""

    def __init__(self, endpoints: str, channel: Any, *, request_timeout: float, max_backlog: int) -> None:
        self.endpoints = endpoints  # as given, for messages
        self.request_timeout = request_timeout
        self.max_backlog = max_backlog
        self._channel = channel
        self._kv = rpc.KVStub(channel)
        self._watch_stub = rpc.WatchStub(channel)
        self._closed = False
        self._watches: set[EtcdWatch] = set()
        self._cache: WatchCache | None = None

    @classmethod
    async def open(
        cls,
        endpoints: str,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        ring_size: int = DEFAULT_RING_SIZE,
    ) -> EtcdStore:
        """Connect to the etcd members ``endpoints`` (``host:port,host:port``) and check that
        the cluster answers, so that a wrong address fails here, with its reason.

        Raises:
            ValueError: ``endpoints`` is malformed.
            StoreUnavailable: no member answered within ``request_timeout``.
        """
        names = parse_endpoints(endpoints)
        try:
            target = await channel_target(names)
        except OSError as err:
            raise StoreUnavailable(f"etcd at {endpoints}: cannot resolve the endpoints: {err}") from None
        channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        store = cls(endpoints, channel, request_timeout=request_timeout, max_backlog=max_backlog)
        try:
            head = await store.current_revision()
        except BaseException:
            await store.close()
            raise
        if ring_size > 0:
            store._cache = WatchCache(store, head, ring_size=ring_size)
            await store._cache.start(request_timeout)
        return store

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        response = await self._call(self._kv.Range, rpc.RangeRequest(key=encode_key(key)), idempotent=True)
        return key_value(response.kvs[0]) if response.kvs else None

    async def list(self, prefix: str, revision: int | None = None) -> ListResult:
        """Pages of LIST_PAGE keys, every page read at the revision of the first, so the result
        is one consistent snapshot however many pages it takes."""
        start, end = prefix_range(prefix)
        # etcd's revision 1 is the empty store, so it answers for revision 0 too (and etcd
        # itself reads revision 0 as "now").
        at = 0 if revision is None else max(revision, 1)
        items: builtins.list[KeyValue] = []
        while True:
            request = rpc.RangeRequest(key=start, range_end=end, revision=at, limit=LIST_PAGE)
            response = await self._range_at(request, revision if revision is not None else at)
            if at == 0:
                at = int(response.header.revision)
            items.extend(key_value(kv) for kv in response.kvs)
            if not response.more:
                return ListResult(items, at if revision is None else revision)
            start = response.kvs[-1].key + b"\0"

    async def current_revision(self) -> int:
        # A linearizable read of one (absent) key: the header holds the cluster's revision.
        request = rpc.RangeRequest(key=b"\0", count_only=True)
        response = await self._call(self._kv.Range, request, idempotent=True)
        return int(response.header.revision)

    async def _range_at(self, request: Any, requested: int) -> Any:
        try:
            return await self._call(self._kv.Range, request, idempotent=True)
        except _Refused as err:
            if _COMPACTED in err.detail:
                raise Compacted(requested, await self._compaction_point(request.revision)) from None
            if _FUTURE in err.detail:
                head = await self.current_revision()
                raise StoreError(
                    f"revision {requested} is in the future: the store is at revision {head}"
                ) from None
            raise

    async def _compaction_point(self, revision: int) -> int:
        """Where history starts now. etcd's "compacted" error does not say, but a watch from
        the refused revision is answered with it."""
        call = self._watch_stub.Watch(
            metadata=REQUIRE_LEADER, wait_for_ready=True, timeout=self.request_timeout
        )
        # A member that has not applied the compaction yet serves the history instead (or
        # stays silent): all that is known then is that ``revision`` itself is gone.
        unknown = revision + 1
        try:
            with self._cut_by_close():
                await call.write(watch_request(b"\0", b"", revision))
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF or response.events or response.canceled:
                        return int(getattr(response, "compact_revision", 0)) or unknown
                    if response.compact_revision:
                        return int(response.compact_revision)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return unknown
            raise self._failure(err, idempotent=True, last=None) from None
        finally:
            call.cancel()

    # -- writes --------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        name = encode_key(key)
        txn = rpc.TxnRequest(
            compare=[etcd_compare(name, rpc.Compare.CREATE, rpc.Compare.EQUAL, create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=name, value=value))],
        )
        response = await self._call(self._kv.Txn, txn, idempotent=False)
        if not response.succeeded:
            raise KeyExists(f"{key}: already exists", key)
        revision = int(response.header.revision)
        return KeyValue(key, value, revision, revision)

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> KeyValue:
        put = rpc.RequestOp(request_put=rpc.PutRequest(key=encode_key(key), value=value, prev_kv=True))
        response = await self._replace(key, put, expected_revision)
        prev = response.responses[0].response_put.prev_kv
        return KeyValue(key, value, int(prev.create_revision), int(response.header.revision))

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        delete = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=encode_key(key), prev_kv=True))
        response = await self._replace(key, delete, expected_revision)
        prev = key_value(response.responses[0].response_delete_range.prev_kvs[0])
        return KeyValue(key, prev.value, prev.create_revision, int(response.header.revision))

    async def _replace(self, key: str, operation: Any, expected_revision: int | None) -> Any:
        """Run ``operation`` if the key exists (at ``expected_revision``): one transaction,
        whose failure branch reads the key so the error can say what was found instead."""
        name = encode_key(key)
        compare = [etcd_compare(name, rpc.Compare.CREATE, rpc.Compare.GREATER, create_revision=0)]
        if expected_revision is not None:
            compare.append(
                etcd_compare(name, rpc.Compare.MOD, rpc.Compare.EQUAL, mod_revision=expected_revision)
            )
        txn = rpc.TxnRequest(
            compare=compare,
            success=[operation],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=name))],
        )
        response = await self._call(self._kv.Txn, txn, idempotent=False)
        if not response.succeeded:
            found = response.responses[0].response_range.kvs
            check_precondition(key, key_value(found[0]) if found else None, expected_revision)
            raise StoreError(f"{key}: etcd refused the write, yet its preconditions hold", key)
        return response

    async def compact(self, revision: int) -> None:
        if revision <= 1:
            return  # nothing precedes etcd's revision 1, the empty store
        request = rpc.CompactionRequest(revision=revision)
        if self._cache is not None:
            await self._cache.caught_up(revision, self.request_timeout)
        try:
            # Compacting twice to one revision changes nothing, so a retry is safe.
            await self._call(self._kv.Compact, request, idempotent=True)
            if self._cache is not None:  # its ring must refuse what etcd now refuses
                self._cache.hub.compacted = max(self._cache.hub.compacted, revision)
        except _Refused as err:
            if _COMPACTED in err.detail:
                return  # at or below the compaction point already: nothing to do
            if _FUTURE in err.detail:
                head = await self.current_revision()
                raise StoreError(
                    f"cannot compact to revision {revision}: the store is at revision {head}"
                ) from None
            raise

    # -- watch and close -----------------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> CachedWatch | EtcdWatch:
        if self._cache is not None and not self._closed:
            return self._cache.watch(prefix, after_revision)
        return self.stream_watch(prefix, after_revision)

    def stream_watch(self, prefix: str, after_revision: int) -> EtcdWatch:
        """A watch on an etcd stream of its own (``watch`` uses the cache where it can)."""
        watch = EtcdWatch(self, prefix, after_revision)
        if self._closed:
            watch._end(StoreClosed("the store was closed"), keep_backlog=False)
        else:
            self._watches.add(watch)
        return watch

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._cache is not None:
            await self._cache.stop()
        watches = list(self._watches)
        for watch in watches:
            watch._end(StoreClosed("the store was closed"), keep_backlog=True)
        for watch in watches:
            await watch._stop()
        await self._channel.close()

    # -- calls ---------------------------------------------------------------------------------

    async def _call(self, method: Callable[..., Any], request: Any, *, idempotent: bool) -> Any:
        """One unary call within ``request_timeout``, retried while that is safe (see the
        module docstring); every failure leaves as a StoreError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        pause = RETRY_FIRST
        last: str | None = None
        while True:
            if self._closed:  # also after a pause: a closed channel takes no more calls
                raise StoreClosed("the store was closed")
            try:
                with self._cut_by_close():
                    return await method(
                        request,
                        timeout=max(deadline - loop.time(), 0.001),
                        metadata=REQUIRE_LEADER,
                        wait_for_ready=True,
                    )
            except grpc.aio.AioRpcError as err:
                if not self._retryable(err, idempotent) or loop.time() + pause >= deadline:
                    raise self._failure(err, idempotent=idempotent, last=last) from None
                last = err.details()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX)

    @contextlib.contextmanager
    def _cut_by_close(self) -> Iterator[None]:
        """gRPC ends a call that the channel's close cut short with CancelledError, which
        would pass for a cancellation of the caller's task: make it StoreClosed."""
        try:
            yield
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and task is not None and not task.cancelling():
                raise StoreClosed("the store was closed") from None
            raise

    def _retryable(self, err: Any, idempotent: bool) -> bool:
        if self._closed or err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return False
        if (err.details() or "") in _REFUSED_BEFORE_PROPOSING:
            return True
        return idempotent and err.code() == grpc.StatusCode.UNAVAILABLE

    def _failure(self, err: Any, *, idempotent: bool, last: str | None) -> StoreError:
        """The StoreError for a failed call."""
        if self._closed:
            return StoreClosed("the store was closed")
        code = err.code()
        detail = err.details() or str(code)
        if code == grpc.StatusCode.OUT_OF_RANGE:
            return _Refused(detail)
        no_quorum = any(sign in detail for sign in _NO_QUORUM_SIGNS)
        if code not in _TRANSIENT and not no_quorum:
            return StoreError(f"etcd at {self.endpoints}: {detail}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            detail = f"no answer within {self.request_timeout:g} s"
            if last:
                detail += f" (last error: {last})"
        message = f"etcd at {self.endpoints}: no quorum / unreachable: {detail}"
        if not idempotent:
            message += "; the write may or may not have been applied"
        return StoreUnavailable(message)


# -- endpoints -------------------------------------------------------------------------------------


def parse_endpoints(spec: str) -> builtins.list[tuple[str, int]]:
    """``host:port,[v6]:port,host`` -> ``[(host, port), ...]`` (port 2379 by default)."""
    endpoints = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        host, port = part, str(DEFAULT_PORT)
        if part.startswith("["):
            host, _, rest = part[1:].partition("]")
            port = rest.removeprefix(":") or port
        elif part.count(":") == 1:
            host, _, port = part.partition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"etcd endpoint {part!r}: expected HOST:PORT, as in 10.0.0.1:2379")
        endpoints.append((host, int(port)))
    if not endpoints:
        raise ValueError("no etcd endpoints given: expected HOST:PORT[,HOST:PORT...]")
    return endpoints


async def channel_target(endpoints: builtins.list[tuple[str, int]]) -> str:
    """A gRPC target naming every endpoint's addresses, so that one channel balances and fails
    over between them. gRPC's ``ipv4:``/``ipv6:`` targets take several addresses, its ``dns:``
    target only one name, so names are resolved here, once."""
    loop = asyncio.get_running_loop()
    addresses: builtins.list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]] = []
    for host, port in endpoints:
        try:
            addresses.append((ipaddress.ip_address(host), port))
        except ValueError:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            for info in infos:
                address = (ipaddress.ip_address(info[4][0]), port)
                if address not in addresses:
                    addresses.append(address)
    if all(isinstance(ip, ipaddress.IPv4Address) for ip, _ in addresses):
        return "ipv4:" + ",".join(f"{ip}:{port}" for ip, port in addresses)
    # Mixed families: IPv4 addresses as IPv4-mapped IPv6 ones, since a target has one scheme.
    mapped = (ipaddress.IPv6Address(f"::ffff:{ip}") if ip.version == 4 else ip for ip, _ in addresses)
    return "ipv6:" + ",".join(f"[{ip}]:{port}" for ip, (_, port) in zip(mapped, addresses, strict=True))
