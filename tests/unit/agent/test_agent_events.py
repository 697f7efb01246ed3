"""Events the agent records about pods, as the kubelet does: Started, Killing, Failed, BackOff
and Unhealthy, on the Pod with ``spec.containers{NAME}``, from ``shoal-agent`` on the node.
Repeats raise the count of one Event instead of creating more. The tests follow the Events'
watch (no sleeps); the recorder's refresh is shortened so that counts are written quickly."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Callable
from typing import Any, cast

import pytest

from shoal.api import Object
from shoal.api.errors import ApiError
from shoal.client._interface import Client
from shoal.client.events import EVENT, EventRecorder
from tests.unit.agent.test_agent_harness import FAST, NODE, WAIT, Harness, cleanup, harness, running

__all__ = ["harness"]

CONFIG = dataclasses.replace(FAST, event_refresh=0.05)


async def wait_events(
    harness: Harness, pod: str, predicate: Callable[[list[Object]], bool], what: str
) -> list[Object]:
    """The pod's Events once ``predicate(events)`` holds, following their watch."""
    selector = f"involvedObject.name={pod}"
    events: dict[str, Object] = {}
    try:
        async with asyncio.timeout(WAIT):
            listed = await harness.client.list(EVENT, "default", field_selector=selector)
            events = {e["metadata"]["name"]: e for e in listed["items"]}
            if predicate(list(events.values())):
                return list(events.values())
            async for change in harness.client.watch(
                EVENT,
                "default",
                resource_version=listed["metadata"]["resourceVersion"],
                field_selector=selector,
            ):
                if change.type == "DELETED":
                    events.pop(change.object["metadata"]["name"], None)
                else:
                    events[change.object["metadata"]["name"]] = change.object
                if predicate(list(events.values())):
                    return list(events.values())
    except TimeoutError:
        pass
    seen = [(e["reason"], e["message"], e.get("count")) for e in events.values()]
    pytest.fail(f"timed out waiting for {what}; events: {seen}")


def of(events: list[Object], reason: str) -> list[Object]:
    return [e for e in events if e["reason"] == reason]


def counted(events: list[Object], reason: str, at_least: int) -> bool:
    return any(int(e.get("count", 0)) >= at_least for e in of(events, reason))


async def test_a_crash_loop_counts_started_and_back_off(harness: Harness) -> None:
    async with harness.running(CONFIG):
        await harness.create_pod("crash", [sys.executable, "-c", "raise SystemExit(1)"])
        events = await wait_events(
            harness,
            "crash",
            lambda es: counted(es, "Started", 3) and counted(es, "BackOff", 2),
            "Started and BackOff counted",
        )
        started, backoff = of(events, "Started"), of(events, "BackOff")
        assert len(started) == 1 and len(backoff) == 1  # one Event each, not one per restart
        assert started[0]["type"] == "Normal" and started[0]["message"] == "Started container app"
        assert backoff[0]["type"] == "Warning"
        assert backoff[0]["message"] == "Back-off restarting failed container app in pod crash"
        involved = started[0]["involvedObject"]
        assert involved["kind"] == "Pod" and involved["name"] == "crash"
        assert involved["fieldPath"] == "spec.containers{app}"
        assert started[0]["source"] == {"component": "shoal-agent", "host": NODE}
        assert started[0]["metadata"]["name"].startswith("crash.")
        assert started[0]["firstTimestamp"] <= started[0]["lastTimestamp"]
        await cleanup(harness, "crash")


async def test_a_missing_executable_is_a_failed_event(harness: Harness) -> None:
    async with harness.running(CONFIG):
        await harness.create_pod("bad", ["/no/such/program"], restartPolicy="Never")
        events = await wait_events(harness, "bad", lambda es: bool(of(es, "Failed")), "Failed")
        failed = of(events, "Failed")[0]
        assert failed["type"] == "Warning" and "/no/such/program" in failed["message"]
        assert not of(events, "Started")
        await cleanup(harness, "bad")


async def test_a_missing_config_map_is_a_failed_event(harness: Harness) -> None:
    env = [{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "color"}}}]
    async with harness.running(CONFIG):
        await harness.create_pod("conf", ["sleep", "1000"], container={"env": env})
        events = await wait_events(harness, "conf", lambda es: bool(of(es, "Failed")), "Failed")
        failed = of(events, "Failed")[0]
        assert failed["type"] == "Warning" and "absent" in failed["message"]
        await cleanup(harness, "conf")


async def test_a_failing_liveness_probe_is_unhealthy(harness: Harness) -> None:
    liveness = {
        "exec": {"command": ["sh", "-c", "echo probe failed >&2; exit 1"]},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    async with harness.running(CONFIG):
        await harness.create_pod("sick", ["sleep", "1000"], container={"livenessProbe": liveness})
        events = await wait_events(
            harness, "sick", lambda es: bool(of(es, "Unhealthy")) and bool(of(es, "Killing")), "Unhealthy"
        )
        unhealthy = of(events, "Unhealthy")[0]
        assert unhealthy["type"] == "Warning"
        assert unhealthy["message"] == "Liveness probe failed: probe failed"
        assert unhealthy["involvedObject"]["fieldPath"] == "spec.containers{app}"
        assert of(events, "Killing")[0]["message"] == "Container app failed liveness probe, will be restarted"
        await cleanup(harness, "sick")


async def test_deleting_a_pod_is_killing(harness: Harness) -> None:
    async with harness.running(CONFIG):
        await harness.create_pod("web", ["sleep", "1000"])
        await harness.wait_pod("web", running, "running")
        await cleanup(harness, "web")
        events = await wait_events(harness, "web", lambda es: bool(of(es, "Killing")), "Killing")
        killing = of(events, "Killing")[0]
        assert killing["type"] == "Normal" and killing["message"] == "Stopping container app"


class _Failing:
    """A client whose writes fail, as with the manager away; ``writes`` counts the attempts."""

    def __init__(self, expected: int) -> None:
        self.writes = 0
        self.expected = expected
        self.done = asyncio.Event()

    async def _fail(self, *args: Any, **kwargs: Any) -> Object:
        self.writes += 1
        if self.writes >= self.expected:
            self.done.set()
        raise ApiError("the manager is away")

    create = patch = _fail


async def test_event_writes_are_best_effort(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="shoal.client.events")
    client = _Failing(expected=3)
    recorder = EventRecorder(cast(Client, client), "shoal-agent", refresh=0.0)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u"}}
    recorder.record({"no": "metadata"}, "Normal", "Started", "broken")  # logged, not raised
    for _ in range(3):
        recorder.record(pod, "Normal", "Started", "Started container app")  # never raises
    task = asyncio.create_task(recorder.run())
    try:
        async with asyncio.timeout(WAIT):
            await client.done.wait()  # a create and two count updates were tried, all failed
        assert not task.done()  # the recorder goes on
        assert "the manager is away" in caplog.text
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
