from __future__ import annotations

import pytest

from shoal.scheduler import SwarmSyntaxError, parse_constraint, schedule_batch
from shoal.scheduler.filters import ERR_CONSTRAINTS, SwarmConstraints
from tests.unit.scheduler.factories import info, node, node_info, pod, snapshot


def check(constraints: list[str], **node_kwargs: object) -> bool:
    p = info(constraints=constraints)
    assert p.problem == ""
    return SwarmConstraints().check(p, node_info(**node_kwargs))  # type: ignore[arg-type]


def test_label_equal_and_not_equal() -> None:
    assert check(["node.labels.zone==a"], labels={"zone": "a"})
    assert check(["node.labels.zone == A"], labels={"zone": "a"})  # case-insensitive, spaces ok
    assert not check(["node.labels.zone==a"], labels={"zone": "b"})
    assert not check(["node.labels.zone==a"], labels={})
    assert check(["node.labels.zone!=a"], labels={"zone": "b"})
    assert check(["node.labels.zone!=a"], labels={})  # a missing label differs from any value
    assert not check(["node.labels.zone!=a"], labels={"zone": "a"})


def test_hostname_role_id_platform() -> None:
    assert check(["node.hostname==n1"], name="n1")
    assert not check(["node.hostname!=n1"], name="n1")
    assert check(["node.role==worker"])
    assert not check(["node.role==manager"])
    assert check(["node.role==manager"], labels={"node-role.kubernetes.io/manager": ""})
    assert check(["node.role==manager"], labels={"shoal.io/role": "manager"})
    assert check(["node.id==uid-n7"], name="n7")
    assert check(["node.platform.os==linux", "node.platform.arch!=arm64"])


def test_all_constraints_must_hold() -> None:
    assert check(["node.labels.zone==a", "node.labels.disk==ssd"], labels={"zone": "a", "disk": "ssd"})
    assert not check(["node.labels.zone==a", "node.labels.disk==ssd"], labels={"zone": "a"})


def test_annotation_formats() -> None:
    newline = info(constraints="node.labels.zone==a\n\n  node.role==worker  \n")
    assert [c.text for c in newline.constraints] == ["node.labels.zone==a", "node.role==worker"]
    as_json = info(constraints=["node.labels.zone==a"])
    assert [c.label for c in as_json.constraints] == ["zone"]
    assert not SwarmConstraints().applies_to(info())
    assert SwarmConstraints().explain(3) == f"3 {ERR_CONSTRAINTS}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("node.labels.zone=a", "expected ATTRIBUTE==VALUE"),
        ("node.labels.zone=~a", "expected ATTRIBUTE==VALUE"),
        ("node.labels.==a", "invalid label key"),
        ("node.labels.zone==", "invalid value"),
        ("node.labels.zone==a==b", "invalid value"),
        ("node.colour==blue", "unknown attribute 'node.colour'"),
        ("node.role==boss", "node.role must be manager or worker"),
        ("engine.labels.x==y", "unknown attribute"),
    ],
)
def test_malformed_constraints(text: str, why: str) -> None:
    with pytest.raises(SwarmSyntaxError, match=why) as caught:
        parse_constraint(text)
    assert caught.value.expression == text
    assert repr(text) in str(caught.value)


def test_malformed_annotation_makes_pod_unschedulable_naming_it() -> None:
    snap = snapshot(node("n1"), node("n2"))
    bad = pod("bad", constraints=["node.labels.zone==a", "node.labels.zone=~a"])
    [placement] = schedule_batch([bad], snap)
    assert not placement.scheduled
    assert placement.message == (
        "pod has an invalid shoal.io/constraints annotation: "
        "'node.labels.zone=~a': expected ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE"
    )
    [broken_json] = schedule_batch([pod("j", constraints='["node.role==worker"')], snap)
    assert "not a JSON list of strings" in broken_json.message
    [not_strings] = schedule_batch([pod("k", constraints="[1, 2]")], snap)
    assert "not a JSON list of strings" in not_strings.message
    [bad_pref] = schedule_batch([pod("q", preferences=["pack=node.labels.zone"])], snap)
    assert "invalid shoal.io/placement-preferences" in bad_pref.message
    assert "spread is the only strategy" in bad_pref.message
    [bad_target] = schedule_batch([pod("r", preferences=["spread=node.hostname"])], snap)
    assert "expected spread=node.labels.KEY" in bad_target.message


def test_impossible_constraint_is_explained() -> None:
    snap = snapshot(node("n1", labels={"zone": "a"}), node("n2", labels={"zone": "b"}), node("n3"))
    [placement] = schedule_batch([pod("p", constraints=["node.labels.zone==c"])], snap)
    assert placement.message == "0/3 nodes are available: 3 node(s) didn't match Pod's placement constraints."
