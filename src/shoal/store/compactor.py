"""Periodic compaction: keep the store's history bounded, for every backend.

Each backend keeps every revision until told to forget it (etcd's own auto-compaction is not
relied upon, so the policy is the same everywhere). The compactor keeps the newest ``keep``
revisions: enough for a watcher that briefly lags or reconnects to resume without a relist,
while a watcher further behind gets Compacted and relists, as Kubernetes clients do on 410.
"""

from __future__ import annotations

import asyncio
import logging

from shoal.store._interface import Store, StoreClosed, StoreError

log = logging.getLogger(__name__)


async def run_compactor(store: Store, *, interval: float = 300.0, keep: int = 1000) -> None:
    """Every ``interval`` seconds, compact away the history older than the newest ``keep``
    revisions. Runs until cancelled or until the store is closed.

    A failure (etcd without quorum, say) is logged and the round skipped: the next round
    compacts further anyway, and a compactor that died would let history grow for good.
    """
    done = 0
    while True:
        await asyncio.sleep(interval)
        try:
            done = await compact_once(store, keep=keep, done=done)
        except StoreClosed:
            return
        except StoreError as err:
            log.warning("compaction skipped: %s", err)


async def compact_once(store: Store, *, keep: int, done: int = 0) -> int:
    """Compact to ``current_revision - keep`` unless that is not past ``done`` (the point of
    the previous compaction); returns the compaction point reached."""
    target = await store.current_revision() - keep
    if target <= done:
        return done
    await store.compact(target)
    log.info("compacted the store's history before revision %d", target)
    return target
