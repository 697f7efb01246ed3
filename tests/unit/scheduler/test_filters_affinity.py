from __future__ import annotations

from typing import Any

import pytest

from shoal.scheduler.filters import ERR_AFFINITY, NodeAffinity, NodeSelector
from tests.unit.scheduler.factories import info, node_info


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}
    }


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


def test_node_selector() -> None:
    f = NodeSelector()
    assert not f.applies_to(info())
    p = info(nodeSelector={"disk": "ssd", "zone": "a"})
    assert f.applies_to(p)
    assert f.check(p, node_info(labels={"disk": "ssd", "zone": "a", "x": "y"}))
    assert not f.check(p, node_info(labels={"disk": "ssd"}))
    assert not f.check(p, node_info(labels={"disk": "hdd", "zone": "a"}))
    assert f.explain(2) == "2 node(s) didn't match Pod's node affinity/selector"


@pytest.mark.parametrize(
    ("term", "labels", "expected"),
    [
        (expr("zone", "In", "a", "b"), {"zone": "b"}, True),
        (expr("zone", "In", "a", "b"), {"zone": "c"}, False),
        (expr("zone", "In", "a"), {}, False),
        (expr("zone", "NotIn", "a"), {"zone": "b"}, True),
        (expr("zone", "NotIn", "a"), {}, True),
        (expr("zone", "NotIn", "a"), {"zone": "a"}, False),
        (expr("gpu", "Exists"), {"gpu": ""}, True),
        (expr("gpu", "Exists"), {}, False),
        (expr("gpu", "DoesNotExist"), {}, True),
        (expr("gpu", "DoesNotExist"), {"gpu": "1"}, False),
        (expr("cores", "Gt", "8"), {"cores": "16"}, True),
        (expr("cores", "Gt", "8"), {"cores": "8"}, False),
        (expr("cores", "Lt", "8"), {"cores": "4"}, True),
        (expr("cores", "Lt", "8"), {"cores": "many"}, False),
        (expr("cores", "Gt", "8", "9"), {"cores": "16"}, False),
        (expr("cores", "Gt", "8"), {}, False),
        (expr("zone", "Bogus", "a"), {"zone": "a"}, False),
        ({}, {"zone": "a"}, False),  # an empty term matches nothing
    ],
)
def test_required_affinity_operators(term: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    p = info(affinity=required(term))
    assert NodeAffinity().check(p, node_info(labels=labels)) is expected


def test_terms_are_ored_expressions_anded() -> None:
    both = {
        "matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "disk", "operator": "In", "values": ["ssd"]},
        ]
    }
    p = info(affinity=required(both, expr("gpu", "Exists")))
    f = NodeAffinity()
    assert f.check(p, node_info(labels={"zone": "a", "disk": "ssd"}))
    assert not f.check(p, node_info(labels={"zone": "a", "disk": "hdd"}))
    assert f.check(p, node_info(labels={"gpu": "1"}))
    assert not f.check(info(affinity=required()), node_info())  # no terms: nothing matches


def test_match_fields_metadata_name() -> None:
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    p = info(affinity=required(term))
    f = NodeAffinity()
    assert f.check(p, node_info("n1"))
    assert not f.check(p, node_info("n2"))
    not_in = {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}
    assert f.check(info(affinity=required(not_in)), node_info("n2"))
    other = {"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["n1"]}]}
    assert not f.check(info(affinity=required(other)), node_info("n1"))


def test_affinity_applies_only_when_required_is_set() -> None:
    f = NodeAffinity()
    assert not f.applies_to(info())
    assert not f.applies_to(info(affinity={"nodeAffinity": {}}))
    assert f.applies_to(info(affinity=required(expr("a", "Exists"))))
    assert f.reason == NodeSelector.reason == ERR_AFFINITY
