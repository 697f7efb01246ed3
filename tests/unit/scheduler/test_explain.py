from __future__ import annotations

from collections import Counter

import shoal.scheduler
from shoal.scheduler import default_chain, unschedulable_message


def test_most_frequent_reason_first_then_alphabetical() -> None:
    reasons = Counter({"Insufficient cpu": 1, "node(s) were not ready": 2, "Insufficient memory": 2})
    assert unschedulable_message(5, reasons) == (
        "0/5 nodes are available: 2 Insufficient memory, 2 node(s) were not ready, 1 Insufficient cpu."
    )


def test_every_filter_explains_itself_with_a_named_reason() -> None:
    chain = default_chain()
    assert len({f.name for f in chain.filters}) == len(chain.filters)
    for f in chain.filters:
        assert f.reason and f.explain(7) == f"7 {f.reason}"
    dynamic = [f.name for f in chain.dynamic_filters]
    assert dynamic == ["FitPods", "FitCPU", "FitMemory", "NodePorts", "MaxReplicasPerNode"]


def test_public_names_match_all() -> None:
    public = {name for name in dir(shoal.scheduler) if not name.startswith("_")}
    modules = {"batch", "chain", "events", "filters", "loop", "podinfo", "scores", "snapshot", "swarm"}
    assert public - modules == set(shoal.scheduler.__all__)
