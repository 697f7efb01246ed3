from __future__ import annotations

from typing import Any

import pytest

from shoal.scheduler.filters import TaintToleration
from shoal.scheduler.filters.taints import tolerates
from tests.unit.scheduler.factories import info, node_info

GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def test_untolerated_taint_named_in_reason() -> None:
    f = TaintToleration()
    n = node_info(taints=[GPU])
    assert not f.check(info(), n)
    assert f.reason_for(info(), n) == "node(s) had untolerated taint {dedicated: gpu}"
    assert f.check(info(), node_info())


def test_prefer_no_schedule_does_not_filter() -> None:
    n = node_info(taints=[{"key": "k", "value": "v", "effect": "PreferNoSchedule"}])
    assert TaintToleration().check(info(), n)


def test_no_execute_filters() -> None:
    n = node_info(taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}])
    assert not TaintToleration().check(info(), n)
    assert (
        TaintToleration().reason_for(info(), n)
        == "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
    )
    ok = info(
        tolerations=[{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]
    )
    assert TaintToleration().check(ok, n)


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "operator": "Equal", "value": "gpu"}, True),  # any effect
        ({"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}, False),
        ({"key": "dedicated", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),  # empty key + Exists tolerates everything
        ({"operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "other", "operator": "Exists"}, False),
        ({"key": "dedicated", "value": "gpu", "effect": "NoExecute"}, False),
        ({"value": "gpu"}, False),  # empty key with Equal matches nothing
        ({"key": "dedicated", "operator": "Weird", "value": "gpu"}, False),
    ],
)
def test_toleration_matching(toleration: dict[str, Any], expected: bool) -> None:
    assert tolerates(toleration, ("dedicated", "gpu", "NoSchedule")) is expected


def test_every_taint_must_be_tolerated() -> None:
    n = node_info(taints=[GPU, {"key": "team", "value": "ml", "effect": "NoSchedule"}])
    half = info(tolerations=[{"key": "dedicated", "operator": "Exists"}])
    assert not TaintToleration().check(half, n)
    assert TaintToleration().reason_for(half, n) == "node(s) had untolerated taint {team: ml}"
    full = info(tolerations=[{"key": "dedicated", "operator": "Exists"}, {"key": "team", "value": "ml"}])
    assert TaintToleration().check(full, n)
