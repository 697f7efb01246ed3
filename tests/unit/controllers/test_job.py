"""The Job controller, reconcile by reconcile, on a real in-memory control plane. Pod
outcomes are simulated by writing the pods' status phase, as an agent would."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.api import Object
from shoal.client import MERGE_PATCH
from shoal.client.informer import object_key
from shoal.controllers._owners import is_active
from shoal.controllers.job import JobController
from tests.unit.controllers.conftest import Stack, kind, pods_of, running

JOB = kind("jobs")
POD = kind("pods")


def job(name: str, restart: str = "Never", **spec: Any) -> Object:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": restart,
                    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                }
            },
        },
    }


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def converge(stack: Stack, controller: JobController, key: str) -> Object:
    """Reconcile until the cache shows the result of the controller's own writes."""
    for _ in range(2):
        await stack.settle()
        await controller.reconcile(key)
    await stack.settle()
    found = stack.informers.of(JOB).get(key)
    assert found is not None
    return found


async def finish(stack: Stack, pod: Object, phase: str, **status: Any) -> None:
    await stack.client.patch(
        POD,
        pod["metadata"]["name"],
        {"status": {"phase": phase, **status}},
        "default",
        patch_type=MERGE_PATCH,
        subresource="status",
    )


def active_pods(stack: Stack, owner: Object) -> list[Object]:
    return [p for p in pods_of(stack, owner) if is_active(p)]


def condition(obj: Object, kind_: str) -> dict[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind_), None)


async def test_runs_completions_never_more_than_parallelism_at_once(stack: Stack) -> None:
    controller = JobController(stack.client, stack.informers)
    async with running(stack):
        created = await stack.client.create(JOB, job("work", completions=5, parallelism=2))
        key = object_key(created)
        current = await converge(stack, controller, key)
        for done in range(1, 6):
            active = active_pods(stack, current)
            assert len(active) == min(2, 5 - done + 1)
            assert current["status"]["active"] == len(active) and current["status"]["succeeded"] == done - 1
            await finish(stack, active[0], "Succeeded")
            current = await converge(stack, controller, key)
            assert len(active_pods(stack, current)) <= 2
        pods = pods_of(stack, current)
        assert len(pods) == 5 and all(p["status"]["phase"] == "Succeeded" for p in pods)  # kept for logs
        assert pods[0]["metadata"]["name"].startswith("work-")
        assert pods[0]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "work"
        ref = pods[0]["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("Job", "work", True)
        complete = condition(current, "Complete")
        assert complete is not None and complete["status"] == "True"
        assert complete["reason"] == "CompletionsReached"
        status = current["status"]
        assert (status["succeeded"], status["active"], status["failed"]) == (5, 0, 0)
        assert status["startTime"] and status["completionTime"]


async def test_work_queue_is_done_when_one_succeeded_and_the_rest_finished(stack: Stack) -> None:
    controller = JobController(stack.client, stack.informers)
    async with running(stack):
        created = await stack.client.create(JOB, job("queue", parallelism=3))
        key = object_key(created)
        current = await converge(stack, controller, key)
        first, *rest = active_pods(stack, current)
        assert len(rest) == 2
        await finish(stack, first, "Succeeded")
        current = await converge(stack, controller, key)
        assert len(active_pods(stack, current)) == 2  # no new pods once the work is done
        assert condition(current, "Complete") is None
        for pod in rest:
            await finish(stack, pod, "Succeeded")
        current = await converge(stack, controller, key)
        assert condition(current, "Complete") is not None and len(pods_of(stack, current)) == 3


async def test_fails_after_more_failures_than_the_backoff_limit(stack: Stack) -> None:
    controller = JobController(stack.client, stack.informers)
    async with running(stack):
        created = await stack.client.create(JOB, job("flaky", completions=4, parallelism=2, backoffLimit=1))
        key = object_key(created)
        current = await converge(stack, controller, key)
        await finish(stack, active_pods(stack, current)[0], "Failed")
        current = await converge(stack, controller, key)
        assert len(active_pods(stack, current)) == 2  # one failure is within the limit: replaced
        assert condition(current, "Failed") is None and current["status"]["failed"] == 1
        await finish(stack, active_pods(stack, current)[0], "Failed")
        current = await converge(stack, controller, key)
        failed = condition(current, "Failed")
        assert failed is not None and (failed["status"], failed["reason"]) == ("True", "BackoffLimitExceeded")
        assert active_pods(stack, current) == []
        assert [p["status"]["phase"] for p in pods_of(stack, current)] == ["Failed", "Failed"]
        assert (current["status"]["failed"], current["status"]["active"]) == (2, 0)
        assert "completionTime" not in current["status"]


async def test_restarts_count_against_the_backoff_limit_with_on_failure(stack: Stack) -> None:
    controller = JobController(stack.client, stack.informers)
    async with running(stack):
        created = await stack.client.create(JOB, job("restarts", backoffLimit=2, restart="OnFailure"))
        key = object_key(created)
        current = await converge(stack, controller, key)
        (pod,) = active_pods(stack, current)
        await finish(
            stack,
            pod,
            "Running",
            containerStatuses=[
                {"name": "c", "restartCount": 2, "ready": False, "image": "busybox", "imageID": ""}
            ],
        )
        current = await converge(stack, controller, key)
        failed = condition(current, "Failed")
        assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
        assert active_pods(stack, current) == []


async def test_fails_when_the_active_deadline_passes(stack: Stack) -> None:
    clock = Clock()
    controller = JobController(stack.client, stack.informers, clock=clock)
    async with running(stack):
        created = await stack.client.create(JOB, job("slow", parallelism=2, activeDeadlineSeconds=10))
        key = object_key(created)
        current = await converge(stack, controller, key)
        assert current["status"]["startTime"] == "2026-01-01T00:00:00Z"
        assert len(active_pods(stack, current)) == 2
        clock.now += timedelta(seconds=9)
        current = await converge(stack, controller, key)
        assert condition(current, "Failed") is None
        clock.now += timedelta(seconds=1)
        current = await converge(stack, controller, key)
        failed = condition(current, "Failed")
        assert failed is not None and failed["reason"] == "DeadlineExceeded"
        assert active_pods(stack, current) == [] and current["status"]["active"] == 0


async def test_the_loop_wakes_itself_up_when_the_deadline_passes(stack: Stack) -> None:
    controller = JobController(stack.client, stack.informers)
    failed = asyncio.Event()
    stack.informers.of(JOB).add_handler(
        lambda old, new: failed.set() if new is not None and condition(new, "Failed") else None
    )
    async with running(stack), asyncio.TaskGroup() as tasks:
        loop = tasks.create_task(controller.run())
        created = await stack.client.create(JOB, job("late", activeDeadlineSeconds=1))
        await asyncio.wait_for(failed.wait(), 5)  # no event arrives at the deadline: only the requeue
        loop.cancel()
        found = stack.informers.of(JOB).get(object_key(created))
        assert found is not None
        reason = condition(found, "Failed")
        assert reason is not None and reason["reason"] == "DeadlineExceeded"


async def test_suspend_deletes_active_pods_and_resume_restarts_the_clock(stack: Stack) -> None:
    clock = Clock()
    controller = JobController(stack.client, stack.informers, clock=clock)
    async with running(stack):
        created = await stack.client.create(JOB, job("paused", completions=3, parallelism=2))
        key = object_key(created)
        current = await converge(stack, controller, key)
        assert len(active_pods(stack, current)) == 2
        await stack.client.patch(JOB, "paused", {"spec": {"suspend": True}}, "default")
        current = await converge(stack, controller, key)
        assert pods_of(stack, current) == [] and current["status"]["active"] == 0
        suspended = condition(current, "Suspended")
        assert suspended is not None and (suspended["status"], suspended["reason"]) == (
            "True",
            "JobSuspended",
        )
        clock.now += timedelta(minutes=5)
        await stack.client.patch(JOB, "paused", {"spec": {"suspend": False}}, "default")
        current = await converge(stack, controller, key)
        assert len(active_pods(stack, current)) == 2
        resumed = condition(current, "Suspended")
        assert resumed is not None and (resumed["status"], resumed["reason"]) == ("False", "JobResumed")
        assert current["status"]["startTime"] == "2026-01-01T00:05:00Z"


async def test_a_job_created_suspended_does_not_start(stack: Stack) -> None:
    controller = JobController(stack.client, stack.informers)
    async with running(stack):
        created = await stack.client.create(JOB, job("held", suspend=True))
        current = await converge(stack, controller, object_key(created))
        assert pods_of(stack, current) == [] and "startTime" not in current["status"]


async def test_reconciling_again_changes_nothing(stack: Stack) -> None:
    controller = JobController(stack.client, stack.informers)
    async with running(stack):
        created = await stack.client.create(JOB, job("steady", completions=2, parallelism=2))
        key = object_key(created)
        current = await converge(stack, controller, key)
        pods = {p["metadata"]["name"] for p in pods_of(stack, current)}
        again = await converge(stack, controller, key)
        assert again["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
        assert {p["metadata"]["name"] for p in pods_of(stack, again)} == pods
        for pod in pods_of(stack, current):
            await finish(stack, pod, "Succeeded")
        done = await converge(stack, controller, key)
        assert condition(done, "Complete") is not None
        # A finished Job is history: even a lost pod is not replaced.
        await stack.client.delete(POD, next(iter(pods)), "default")
        after = await converge(stack, controller, key)
        assert after["status"] == done["status"] and len(pods_of(stack, after)) == 1


async def test_a_deleted_job_is_a_no_op(stack: Stack) -> None:
    controller = JobController(stack.client, stack.informers)
    async with running(stack):
        await controller.reconcile("default/nothing")
        assert stack.informers.of(POD).list() == []


async def test_does_not_act_again_before_seeing_its_own_creates(stack: Stack) -> None:
    controller = JobController(stack.client, stack.informers)
    async with running(stack):
        created = await stack.client.create(JOB, job("eager", completions=10, parallelism=3))
        await stack.settle()
    # The informers are stopped: their caches lag every write from here on.
    await controller.reconcile(object_key(created))
    await controller.reconcile(object_key(created))
    listed = await stack.client.list(POD, "default")
    assert len(listed["items"]) == 3
