"""The Deployment controller on a real in-memory stack (store, resources, local client,
informers), with ``reconcile`` called by hand and the ReplicaSet controller simulated by
writing ReplicaSet status."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shoal.api import Object
from shoal.api.errors import Conflict, NotFound
from shoal.api.kinds import DEPLOYMENT, REPLICA_SET
from shoal.client.informer import Informer, Informers
from shoal.client.local import LocalClient
from shoal.client.workqueue import WorkQueue
from shoal.controllers.deployment import HASH_LABEL, REVISION, DeploymentController
from shoal.controllers.deployment_util import fenceposts, template_hash
from shoal.server.resources import Resources
from shoal.store.memory import MemoryStore

KEY = "default/web"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def deployment(
    name: str = "web",
    replicas: int = 3,
    image: str = "v1",
    strategy: dict[str, Any] | None = None,
    **spec: Any,
) -> Object:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **({"strategy": strategy} if strategy else {}),
            **spec,
        },
    }


class Clock:
    """A fake clock for condition times and progress deadlines."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Env:
    clock: Clock

    def __init__(self, client: LocalClient, informers: Informers, controller: DeploymentController) -> None:
        self.client = client
        self.controller = controller
        self.watched = [controller.deployments, controller.replica_sets]
        self.changed = asyncio.Event()
        for informer in self.watched:
            informer.add_handler(lambda old, new: self.changed.set())

    async def settle(self) -> None:
        """Wait until every cache holds exactly what the store holds (our own writes seen)."""
        while True:
            self.changed.clear()
            if all([await self._in_step(informer) for informer in self.watched]):
                return
            await asyncio.wait_for(self.changed.wait(), 5)

    async def _in_step(self, informer: Informer) -> bool:
        listed = await self.client.list(informer.kind)
        stored = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listed["items"]}
        cached = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in informer.list()}
        return stored == cached

    async def step(self) -> None:
        await self.controller.reconcile(KEY)
        await self.settle()

    async def deploy(self, obj: Object) -> None:
        await self.client.create(DEPLOYMENT, obj)
        await self.settle()

    async def change(self, patch: Object) -> None:
        await self.client.patch(DEPLOYMENT, "web", patch, "default")
        await self.settle()

    async def deployment(self) -> Object:
        return await self.client.get(DEPLOYMENT, "web", "default")

    async def rss(self) -> list[Object]:
        """ReplicaSets in the store, oldest revision first."""
        items = (await self.client.list(REPLICA_SET, "default"))["items"]
        return sorted(items, key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")))

    async def replicas(self) -> list[int]:
        return [rs["spec"]["replicas"] for rs in await self.rss()]

    async def report(self, name: str, replicas: int, available: int | None = None) -> None:
        """What the ReplicaSet controller would write: pods it has, and how many are available."""
        rs = await self.client.get(REPLICA_SET, name, "default")
        available = replicas if available is None else available
        rs["status"] = {
            "replicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
            "observedGeneration": rs["metadata"]["generation"],
        }
        await self.client.update(REPLICA_SET, rs, subresource="status")

    async def all_running(self) -> None:
        for rs in await self.rss():
            await self.report(rs["metadata"]["name"], rs["spec"]["replicas"])
        await self.settle()


@contextlib.asynccontextmanager
async def stack() -> AsyncIterator[Env]:
    store = MemoryStore()
    resources = Resources(store)
    await resources.bootstrap()
    client = LocalClient(resources)
    informers = Informers(client)
    clock = Clock()
    env = Env(client, informers, DeploymentController(client, informers, clock=clock))
    env.clock = clock
    async with asyncio.TaskGroup() as tasks:
        running = tasks.create_task(informers.run())
        await asyncio.wait_for(informers.wait_synced(), 5)
        try:
            yield env
        finally:
            running.cancel()
    await store.close()


async def drain(queue: WorkQueue) -> list[str]:
    """The keys the handlers queued so far (the loop is not running in these tests)."""
    keys = []
    while len(queue):
        key = await queue.get()
        queue.done(key)
        keys.append(key)
    return keys


def condition(obj: Object, kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


async def test_first_reconcile_creates_one_replica_set() -> None:
    async with stack() as env:
        await env.deploy(deployment())
        await env.step()
        (rs,) = await env.rss()
        d = await env.deployment()
        pod_hash = rs["metadata"]["labels"][HASH_LABEL]
        assert len(pod_hash) == 10 and pod_hash.isalnum()
        assert pod_hash == template_hash(d["spec"]["template"])
        assert rs["metadata"]["name"] == f"web-{pod_hash}"
        assert rs["metadata"]["labels"] == {"app": "web", HASH_LABEL: pod_hash}
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH_LABEL: pod_hash}
        assert rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL] == pod_hash
        assert rs["spec"]["replicas"] == 3
        (ref,) = rs["metadata"]["ownerReferences"]
        assert (
            ref["kind"] == "Deployment" and ref["uid"] == d["metadata"]["uid"] and ref["controller"] is True
        )
        assert rs["metadata"]["annotations"][REVISION] == "1"
        assert d["metadata"]["annotations"][REVISION] == "1"


async def test_reconcile_twice_is_idempotent() -> None:
    async with stack() as env:
        await env.deploy(deployment())
        await env.step()
        await env.all_running()
        await env.step()
        before = (await env.rss(), await env.deployment())
        await env.step()
        assert (await env.rss(), await env.deployment()) == before  # not even a status write


async def test_rolling_update_respects_surge_and_unavailable() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    async with stack() as env:
        await env.deploy(deployment(replicas=4, strategy=strategy))
        await env.step()
        await env.all_running()
        await env.step()
        await env.change({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}})
        await env.step()  # a new ReplicaSet within 4 + 1 pods, and one old pod may go (4 - 1 available)
        _, new = await env.rss()
        assert new["metadata"]["annotations"][REVISION] == "2"
        assert (await env.deployment())["metadata"]["annotations"][REVISION] == "2"
        assert await env.replicas() == [3, 1]
        await env.step()  # an old pod went: room for one more new one
        assert await env.replicas() == [3, 2]
        await env.step()  # 5 pods, of which only the old 4 may count as available: wait
        assert await env.replicas() == [3, 2]
        d = await env.deployment()
        assert d["status"]["updatedReplicas"] == 0 and d["status"]["availableReplicas"] == 4
        assert condition(d, "Progressing")["reason"] == "NewReplicaSetCreated"
        # A ReplicaSet controller whose pods vanish at once but become available one round late.
        seen: dict[str, int] = {}
        reasons: set[str] = set()
        for _ in range(12):
            for rs in await env.rss():
                name, wanted = rs["metadata"]["name"], rs["spec"]["replicas"]
                available = min(wanted, seen.get(name, 0) if name == new["metadata"]["name"] else wanted)
                await env.report(name, wanted, available)
                seen[name] = wanted
            await env.settle()
            rss = await env.rss()
            assert sum(rs["status"]["availableReplicas"] for rs in rss) >= 3  # 4 - maxUnavailable
            await env.step()
            assert sum(await env.replicas()) <= 5  # 4 + maxSurge
            reasons.add(condition(await env.deployment(), "Progressing")["reason"])
        assert await env.replicas() == [0, 4]
        assert "ReplicaSetUpdated" in reasons
        await env.all_running()
        await env.step()
        d = await env.deployment()
        assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
        assert d["status"]["updatedReplicas"] == 4 and d["status"]["replicas"] == 4


async def test_recreate_waits_for_old_pods_to_go() -> None:
    async with stack() as env:
        await env.deploy(deployment(strategy={"type": "Recreate"}))
        await env.step()
        await env.all_running()
        await env.change({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}})
        await env.step()
        assert await env.replicas() == [0]  # old scaled to 0, no new one yet
        await env.step()
        assert len(await env.rss()) == 1  # its pods are still terminating
        (old,) = await env.rss()
        await env.report(old["metadata"]["name"], 0)
        await env.settle()
        await env.step()
        assert await env.replicas() == [0, 3]
        assert (await env.rss())[1]["metadata"]["annotations"][REVISION] == "2"


async def test_scale_without_template_change_scales_the_replica_set() -> None:
    async with stack() as env:
        await env.deploy(deployment(replicas=2))
        await env.step()
        await env.all_running()
        await env.change({"spec": {"replicas": 5}})
        await env.step()
        assert await env.replicas() == [5]
        await env.change({"spec": {"replicas": 1}})
        await env.step()
        assert await env.replicas() == [1]
        assert (await env.rss())[0]["metadata"]["annotations"][REVISION] == "1"


async def test_old_replica_sets_beyond_history_limit_are_deleted() -> None:
    async with stack() as env:
        await env.deploy(deployment(replicas=1, revisionHistoryLimit=1))
        for image in ("v2", "v3", "v4"):
            await env.step()
            await env.all_running()
            await env.change(
                {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
            )
        for _ in range(6):
            await env.step()
            await env.all_running()
        rss = await env.rss()
        revisions = [rs["metadata"]["annotations"][REVISION] for rs in rss]
        assert revisions == ["3", "4"]  # the newest old one is kept for `rollout undo`
        assert [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in rss] == ["v3", "v4"]


async def test_status_and_conditions() -> None:
    async with stack() as env:
        await env.deploy(deployment(replicas=4))
        await env.step()
        d = await env.deployment()
        assert d["status"]["observedGeneration"] == d["metadata"]["generation"]
        assert d["status"]["replicas"] == 0 and d["status"]["unavailableReplicas"] == 4
        assert condition(d, "Available")["status"] == "False"
        (rs,) = await env.rss()
        progressing = condition(d, "Progressing")
        assert progressing["reason"] == "NewReplicaSetCreated" and progressing["status"] == "True"
        assert progressing["message"] == f'Created new replica set "{rs["metadata"]["name"]}"'
        await env.report(rs["metadata"]["name"], 4, available=3)  # 25% of 4: one may be missing
        await env.settle()
        await env.step()
        d = await env.deployment()
        assert condition(d, "Available")["status"] == "True"
        assert condition(d, "Available")["reason"] == "MinimumReplicasAvailable"
        assert condition(d, "Progressing")["reason"] == "ReplicaSetUpdated"
        assert d["status"]["availableReplicas"] == 3 and d["status"]["unavailableReplicas"] == 1
        await env.all_running()
        await env.step()
        d = await env.deployment()
        assert {
            k: d["status"][k] for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
        } == {
            "replicas": 4,
            "updatedReplicas": 4,
            "readyReplicas": 4,
            "availableReplicas": 4,
        }
        progressing = condition(d, "Progressing")
        assert progressing["reason"] == "NewReplicaSetAvailable"
        assert progressing["message"] == f'ReplicaSet "{rs["metadata"]["name"]}" has successfully progressed.'


async def test_orphan_replica_set_is_adopted() -> None:
    async with stack() as env:
        await env.deploy(deployment())
        d = await env.deployment()
        template = d["spec"]["template"]
        orphan = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "by-hand", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        }
        await drain(env.controller.queue)
        await env.client.create(REPLICA_SET, orphan)
        await env.settle()
        assert await drain(env.controller.queue) == [KEY]  # the orphan's event names its adopter
        await env.step()
        (rs,) = await env.rss()  # same template: adopted and used, no second ReplicaSet
        assert rs["metadata"]["name"] == "by-hand"
        assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]


async def test_replica_set_of_another_owner_is_ignored() -> None:
    async with stack() as env:
        await env.deploy(deployment())
        foreign = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "theirs",
                "namespace": "default",
                "labels": {"app": "web"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "u-1", "controller": True}
                ],
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": (await env.deployment())["spec"]["template"],
            },
        }
        await env.client.create(REPLICA_SET, foreign)
        await env.settle()
        await env.step()
        theirs = await env.client.get(REPLICA_SET, "theirs", "default")
        assert theirs["spec"]["replicas"] == 2 and theirs["metadata"]["ownerReferences"][0]["uid"] == "u-1"
        assert len(await env.rss()) == 2  # ours was created beside it
        assert (await env.deployment())["status"]["replicas"] == 0  # theirs is not counted


async def test_deleted_deployment_is_a_no_op() -> None:
    async with stack() as env:
        await env.deploy(deployment())
        await env.client.delete(DEPLOYMENT, "web", "default")
        await env.settle()
        await env.step()
        assert await env.rss() == []
        with pytest.raises(NotFound):
            await env.deployment()


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        (10, "25%", "25%", (3, 2)),  # surge rounds up, unavailability down
        (3, "0%", "0%", (0, 1)),  # both zero: one may be unavailable
        (4, 2, 1, (2, 1)),
        (2, 0, 5, (0, 2)),  # never more unavailable than there are replicas
    ],
)
def test_fenceposts(
    replicas: int, surge: int | str, unavailable: int | str, expected: tuple[int, int]
) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    assert fenceposts(deployment(replicas=replicas, strategy=strategy)) == expected
    assert fenceposts(deployment(replicas=replicas, strategy={"type": "Recreate"})) == (0, 0)


async def test_rollback_reuses_the_old_replica_set_with_a_new_revision() -> None:
    async with stack() as env:
        await env.deploy(deployment(replicas=1))
        await env.step()
        await env.all_running()
        first = (await env.rss())[0]["metadata"]["name"]
        await env.change({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}})
        for _ in range(4):
            await env.step()
            await env.all_running()
        await env.change({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v1"}]}}}})
        for _ in range(4):
            await env.step()
            await env.all_running()
        rss = await env.rss()
        assert len(rss) == 2  # no third ReplicaSet: the v1 one came back
        assert rss[1]["metadata"]["name"] == first and rss[1]["metadata"]["annotations"][REVISION] == "3"
        assert await env.replicas() == [0, 1]
        assert (await env.deployment())["metadata"]["annotations"][REVISION] == "3"


async def test_paused_deployment_scales_but_does_not_roll_out() -> None:
    async with stack() as env:
        await env.deploy(deployment(replicas=2))
        await env.step()
        await env.all_running()
        await env.step()
        await env.change({"spec": {"paused": True}})
        await env.step()
        assert condition(await env.deployment(), "Progressing")["reason"] == "DeploymentPaused"
        await env.change(
            {"spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}}
        )
        await env.step()
        assert await env.replicas() == [3]  # scaled, but still the one (old template) ReplicaSet
        await env.change({"spec": {"paused": False}})
        await env.step()
        assert await env.replicas() == [3, 1]  # resumed: the rollout starts
        assert condition(await env.deployment(), "Progressing")["reason"] == "NewReplicaSetCreated"


async def test_stalled_rollout_exceeds_its_progress_deadline() -> None:
    async with stack() as env:
        await env.deploy(deployment(replicas=1, progressDeadlineSeconds=60))
        await drain(env.controller.queue)
        await env.step()
        assert await drain(env.controller.queue) == [KEY]  # owned RS event; the recheck is delayed
        assert condition(await env.deployment(), "Progressing")["status"] == "True"
        env.clock.now = NOW + timedelta(seconds=59)
        await env.step()
        assert condition(await env.deployment(), "Progressing")["status"] == "True"
        env.clock.now = NOW + timedelta(seconds=61)  # no pod became available in time
        await env.step()
        progressing = condition(await env.deployment(), "Progressing")
        assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
        await env.all_running()  # late, but it gets there
        await env.step()
        progressing = condition(await env.deployment(), "Progressing")
        assert (progressing["status"], progressing["reason"]) == ("True", "NewReplicaSetAvailable")


async def test_replica_set_events_enqueue_the_owning_deployment() -> None:
    async with stack() as env:
        await env.deploy(deployment())
        await env.step()
        await drain(env.controller.queue)
        (rs,) = await env.rss()
        await env.report(rs["metadata"]["name"], 1)
        await env.settle()
        assert await drain(env.controller.queue) == [KEY]


async def test_hash_collision_bumps_collision_count() -> None:
    async with stack() as env:
        await env.deploy(deployment())
        d = await env.deployment()
        squatter: Object = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"web-{template_hash(d['spec']['template'])}",
                "namespace": "default",
                "labels": {"app": "other"},
            },
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "other"}},
                "template": {
                    "metadata": {"labels": {"app": "other"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            },
        }
        await env.client.create(REPLICA_SET, squatter)
        await env.settle()
        with pytest.raises(Conflict):
            await env.controller.reconcile(KEY)
        await env.settle()
        assert (await env.deployment())["status"]["collisionCount"] == 1
        await env.step()
        ours = [rs for rs in await env.rss() if rs["metadata"]["name"] != squatter["metadata"]["name"]]
        assert [rs["metadata"]["name"] for rs in ours] == [f"web-{template_hash(d['spec']['template'], 1)}"]
