"""The kubelet's phase rules and the status the agent builds, without processes."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.agent.restart import Backoff
from shoal.agent.runtimes import ContainerState, ContainerStatus
from shoal.agent.status import ContainerView, changed, container_status, phase, pod_status


def exited(code: int, cid: str = "u.app.0") -> ContainerStatus:
    return ContainerStatus(
        cid, ContainerState.EXITED, "t0", "t1", "t2", code, "Error" if code else "Completed"
    )


def running(cid: str = "u.app.0") -> ContainerStatus:
    return ContainerStatus(cid, ContainerState.RUNNING, "t0", "t1", pid=1)


def statuses(*views: ContainerView) -> list[dict[str, Any]]:
    return [container_status(v, "exec") for v in views]


@pytest.mark.parametrize(
    ("policy", "codes", "expected"),
    [
        ("Never", [0], "Succeeded"),
        ("Never", [3], "Failed"),
        ("Never", [0, 3], "Failed"),
        ("OnFailure", [0, 0], "Succeeded"),
        ("OnFailure", [3], "Running"),
        ("Always", [0], "Running"),
    ],
)
def test_phase_of_stopped_containers(policy: str, codes: list[int], expected: str) -> None:
    views = [ContainerView(f"c{i}", "img", current=exited(c, f"u.c{i}.0")) for i, c in enumerate(codes)]
    assert phase(policy, statuses(*views)) == expected


def test_phase_pending_running_and_crash_loop() -> None:
    assert phase("Always", statuses(ContainerView("a", "img"))) == "Pending"
    assert phase("Always", statuses(ContainerView("a", "img", current=running()))) == "Running"
    looping = ContainerView("a", "img", 1, current=exited(1), waiting=("CrashLoopBackOff", "back-off"))
    (status,) = statuses(looping)
    assert status["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["lastState"]["terminated"]["containerID"] == "exec://u.app.0"
    assert phase("Always", [status]) == "Running"  # it ran: stopped, not pending


def test_status_is_stable_when_nothing_changes() -> None:
    pod: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {"restartPolicy": "Always"}}
    views = [ContainerView("a", "img", current=running(), ready=True)]
    first = pod_status(pod, views, runtime="exec", host_ip="10.0.0.1", pod_ip="10.0.0.1", now="T1")
    again = pod_status(
        {**pod, "status": first}, views, runtime="exec", host_ip="10.0.0.1", pod_ip="10.0.0.1", now="T2"
    )
    assert not changed(first, again)
    assert {c["type"]: c["status"] for c in first["conditions"]} == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }


def test_terminal_phase_is_sticky() -> None:
    pod: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Failed"}}
    views = [ContainerView("a", "img", current=running())]
    new = pod_status(pod, views, runtime="exec", host_ip="h", pod_ip="h", now="T")
    assert new["phase"] == "Failed"


def test_backoff_doubles_and_forgives() -> None:
    now = [100.0]
    backoff = Backoff(10, 40, clock=lambda: now[0])
    key = ("uid", "app")
    assert backoff.remaining(key, finished_at=100) == 0  # the first restart is immediate
    backoff.restarted(key)
    assert backoff.remaining(key, finished_at=101) == 11
    now[0] = 111
    backoff.restarted(key)
    assert backoff.delay(key) == 20
    backoff.restarted(key)
    backoff.restarted(key)
    assert backoff.delay(key) == 40  # capped
    now[0] += 81  # calm for more than twice the cap
    backoff.restarted(key)
    assert backoff.delay(key) == 10
