from __future__ import annotations

from shoal.scheduler.filters import (
    ERR_NOT_READY,
    ERR_UNAVAILABLE,
    ERR_UNSCHEDULABLE,
    NodeAvailability,
    NodeReady,
    NodeUnschedulable,
)
from tests.unit.scheduler.factories import info, node, node_info


def test_ready_requires_ready_true() -> None:
    f = NodeReady()
    assert f.check(info(), node_info(ready=True))
    assert not f.check(info(), node_info(ready=False))
    no_conditions = node("n")
    no_conditions["status"]["conditions"] = []
    from shoal.scheduler.snapshot import NodeInfo

    assert not f.check(info(), NodeInfo(no_conditions))
    assert f.explain(3) == f"3 {ERR_NOT_READY}" == "3 node(s) were not ready"


def test_cordoned_node_refused_unless_tolerated() -> None:
    f = NodeUnschedulable()
    assert f.check(info(), node_info())
    assert not f.check(info(), node_info(unschedulable=True))
    toleration = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
    assert f.check(info(tolerations=[toleration]), node_info(unschedulable=True))
    assert f.explain(1) == f"1 {ERR_UNSCHEDULABLE}"


def test_availability_label_or_annotation() -> None:
    f = NodeAvailability()
    assert f.check(info(), node_info())
    assert f.check(info(), node_info(labels={"shoal.io/availability": "active"}))
    assert not f.check(info(), node_info(labels={"shoal.io/availability": "pause"}))
    assert not f.check(info(), node_info(annotations={"shoal.io/availability": "drain"}))
    assert not f.check(info(), node_info(annotations={"shoal.io/availability": "DRAIN"}))
    # The annotation (what `shoal node update` writes) wins over a stale label.
    both = node_info(
        labels={"shoal.io/availability": "drain"}, annotations={"shoal.io/availability": "active"}
    )
    assert f.check(info(), both)
    # A typo must not put pods on a node someone meant to drain.
    assert not f.check(info(), node_info(annotations={"shoal.io/availability": "dran"}))
    assert f.explain(2) == f"2 {ERR_UNAVAILABLE}"
