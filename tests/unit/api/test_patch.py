"""Tests of the three patch types and of the PATCH body dispatcher.

The strategic merge patch cases are the ones ``kubectl apply`` (client-side) and
``kubectl patch`` send for a Deployment; the schema is a small stand-in built here, so that
these tests do not depend on the kind declarations.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shoal.api.errors import BadRequest, Invalid, RequestTooLarge, UnsupportedMediaType
from shoal.api.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MAX_JSON_PATCH_OPERATIONS,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from shoal.api.schema import Arr, Int, IntOrStr, Map, Obj, Raw, Str

Json = Any

# --- a small Deployment schema -------------------------------------------------------------

OWNER = Obj("OwnerReference", {"uid": Str(), "name": Str(), "kind": Str()})
META = Obj(
    "ObjectMeta",
    {
        "name": Str(),
        "labels": Map(Str()),
        "annotations": Map(Str()),
        "finalizers": Arr(Str(), strategy="merge"),
        "ownerReferences": Arr(OWNER, merge_key="uid", strategy="merge"),
    },
)
ENV = Obj("EnvVar", {"name": Str(), "value": Str()})
PORT = Obj("ContainerPort", {"containerPort": Int(), "protocol": Str(), "name": Str()})
CONTAINER = Obj(
    "Container",
    {
        "name": Str(),
        "image": Str(),
        "args": Arr(Str()),
        "env": Arr(ENV, merge_key="name", strategy="merge"),
        "ports": Arr(PORT, merge_key="containerPort", strategy="merge"),
        "resources": Obj("ResourceRequirements", {"limits": Map(Str())}),
    },
)
VOLUME = Obj(
    "Volume",
    {"name": Str(), "emptyDir": Obj("EmptyDir", {}), "configMap": Obj("ConfigMapSource", {"name": Str()})},
)
POD_SPEC = Obj(
    "PodSpec",
    {
        "containers": Arr(CONTAINER, merge_key="name", strategy="merge"),
        "volumes": Arr(VOLUME, merge_key="name", strategy="merge,retainKeys"),
        "nodeSelector": Map(Str()),
        "tolerations": Arr(Obj("Toleration", {"key": Str()})),
    },
)
STRATEGY = Obj(
    "DeploymentStrategy",
    {
        "type": Str(),
        "rollingUpdate": Obj("RollingUpdate", {"maxSurge": IntOrStr(), "maxUnavailable": IntOrStr()}),
    },
)
DEPLOYMENT = Obj(
    "Deployment",
    {
        "apiVersion": Str(),
        "kind": Str(),
        "metadata": META,
        "spec": Obj(
            "DeploymentSpec",
            {
                "replicas": Int(),
                "selector": Raw(),
                "strategy": STRATEGY,
                "template": Obj("PodTemplateSpec", {"metadata": META, "spec": POD_SPEC}),
            },
        ),
        "status": Raw(),
    },
)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def deployment(containers: list[Json], **spec: Json) -> Json:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {LAST_APPLIED: "{}"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}},
            **spec,
        },
        "status": {"replicas": 2},
    }


def containers_of(obj: Json) -> list[Json]:
    result: list[Json] = obj["spec"]["template"]["spec"]["containers"]
    return result


def names(items: list[Json], key: str = "name") -> list[Json]:
    return [item[key] for item in items]


def template_patch(pod_spec: Json) -> Json:
    return {"spec": {"template": {"spec": pod_spec}}}


def smp(original: Json, patch: Json, schema: Any = DEPLOYMENT) -> Json:
    """Apply a strategic patch, checking on the way that neither input was modified and no
    directive survived."""
    before = copy.deepcopy((original, patch))
    result = strategic_merge_patch(original, patch, schema)
    assert (original, patch) == before, "an input was modified"
    assert_no_directive(result)
    return result


def assert_no_directive(value: Json, path: str = "") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert not (key == "$patch" or key == "$retainKeys" or key.startswith("$setElementOrder/")), (
                f"directive {key} left at {path}"
            )
            assert not key.startswith("$deleteFromPrimitiveList/"), f"directive {key} left at {path}"
            assert_no_directive(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_no_directive(item, f"{path}[{index}]")


WEB = {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}
LOG = {"name": "log", "image": "fluentbit:2", "args": ["--quiet"]}


# --- strategic merge patch: what kubectl apply sends ---------------------------------------


class TestKubectlApplyDeployment:
    def test_changing_one_image_keeps_the_other_container(self) -> None:
        live = deployment([WEB, LOG])
        patch = {
            "metadata": {"annotations": {LAST_APPLIED: '{"new":"config"}\n'}},
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                        "containers": [{"image": "nginx:1.27", "name": "web"}],
                    }
                }
            },
        }
        result = smp(live, patch)
        assert containers_of(result) == [{**WEB, "image": "nginx:1.27"}, LOG]
        assert result["metadata"]["annotations"] == {LAST_APPLIED: '{"new":"config"}\n'}
        assert result["metadata"]["labels"] == {"app": "web"}
        assert result["spec"]["replicas"] == 2
        assert result["status"] == {"replicas": 2}

    def test_replicas_change(self) -> None:
        live = deployment([WEB, LOG])
        result = smp(live, {"spec": {"replicas": 5}})
        assert result == {**live, "spec": {**live["spec"], "replicas": 5}}

    def test_changing_one_env_var_by_name(self) -> None:
        web = {**WEB, "env": [{"name": "MODE", "value": "prod"}, {"name": "LEVEL", "value": "info"}]}
        live = deployment([web, LOG])
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                "containers": [
                    {
                        "$setElementOrder/env": [{"name": "MODE"}, {"name": "LEVEL"}],
                        "env": [{"name": "LEVEL", "value": "debug"}],
                        "name": "web",
                    }
                ],
            }
        )
        result = smp(live, patch)
        assert containers_of(result)[0]["env"] == [
            {"name": "MODE", "value": "prod"},
            {"name": "LEVEL", "value": "debug"},
        ]
        assert containers_of(result)[1] == LOG

    def test_adding_and_removing_env_vars(self) -> None:
        web = {**WEB, "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                "containers": [
                    {
                        "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                        "env": [{"$patch": "delete", "name": "B"}, {"name": "C", "value": "3"}],
                        "name": "web",
                    }
                ],
            }
        )
        result = smp(deployment([web, LOG]), patch)
        assert containers_of(result)[0]["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]

    def test_removing_a_container(self) -> None:
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"$patch": "delete", "name": "log"}],
            }
        )
        result = smp(deployment([WEB, LOG]), patch)
        assert containers_of(result) == [WEB]

    def test_adding_a_container_in_the_middle_follows_set_element_order(self) -> None:
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "proxy"}, {"name": "log"}],
                "containers": [{"image": "envoy:1", "name": "proxy"}],
            }
        )
        result = smp(deployment([WEB, LOG]), patch)
        assert names(containers_of(result)) == ["web", "proxy", "log"]
        assert containers_of(result)[1] == {"image": "envoy:1", "name": "proxy"}

    def test_reordering_without_changes(self) -> None:
        patch = template_patch({"$setElementOrder/containers": [{"name": "log"}, {"name": "web"}]})
        result = smp(deployment([WEB, LOG]), patch)
        assert containers_of(result) == [LOG, WEB]

    def test_server_only_container_keeps_its_place(self) -> None:
        # A sidecar an admission webhook injected is not in the user's file, so not in
        # $setElementOrder; it must survive the apply and stay where it was.
        sidecar = {"name": "mesh", "image": "mesh:1"}
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                "containers": [{"image": "fluentbit:3", "name": "log"}],
            }
        )
        result = smp(deployment([WEB, sidecar, LOG]), patch)
        assert names(containers_of(result)) == ["web", "mesh", "log"]
        assert containers_of(result)[2]["image"] == "fluentbit:3"

    def test_removing_a_field_of_a_container(self) -> None:
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                "containers": [{"args": None, "name": "log"}],
            }
        )
        result = smp(deployment([WEB, LOG]), patch)
        assert containers_of(result)[1] == {"name": "log", "image": "fluentbit:2"}

    def test_ports_merge_on_an_integer_key(self) -> None:
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                "containers": [
                    {
                        "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
                        "name": "web",
                        "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
                    }
                ],
            }
        )
        result = smp(deployment([WEB, LOG]), patch)
        assert containers_of(result)[0]["ports"] == [
            {"containerPort": 80, "name": "http"},
            {"containerPort": 443},
        ]

    def test_args_are_replaced_not_merged(self) -> None:
        patch = template_patch({"containers": [{"name": "log", "args": ["--verbose", "--color"]}]})
        result = smp(deployment([WEB, LOG]), patch)
        assert containers_of(result)[1]["args"] == ["--verbose", "--color"]

    def test_strategy_type_change_clears_rolling_update_with_retain_keys(self) -> None:
        live = deployment([WEB], strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}}
        assert smp(live, patch)["spec"]["strategy"] == {"type": "Recreate"}

    def test_volume_source_change_with_retain_keys(self) -> None:
        live = deployment([WEB])
        live["spec"]["template"]["spec"]["volumes"] = [
            {"name": "data", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ]
        patch = template_patch(
            {
                "$setElementOrder/volumes": [{"name": "data"}, {"name": "tmp"}],
                "volumes": [
                    {"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "name": "data"}
                ],
            }
        )
        volumes = smp(live, patch)["spec"]["template"]["spec"]["volumes"]
        assert volumes == [{"name": "data", "configMap": {"name": "cfg"}}, {"name": "tmp", "emptyDir": {}}]

    def test_labels_are_merged_and_null_removes_one(self) -> None:
        live = deployment([WEB])
        live["metadata"]["labels"] = {"app": "web", "tier": "front", "old": "yes"}
        result = smp(live, {"metadata": {"labels": {"old": None, "team": "a"}}})
        assert result["metadata"]["labels"] == {"app": "web", "tier": "front", "team": "a"}

    def test_finalizers_with_delete_from_primitive_list(self) -> None:
        live = deployment([WEB])
        live["metadata"]["finalizers"] = ["a.io/one", "b.io/two"]
        patch = {
            "metadata": {
                "$deleteFromPrimitiveList/finalizers": ["a.io/one"],
                "$setElementOrder/finalizers": ["b.io/two", "c.io/three"],
                "finalizers": ["c.io/three"],
            }
        }
        assert smp(live, patch)["metadata"]["finalizers"] == ["b.io/two", "c.io/three"]

    def test_owner_references_merge_by_uid(self) -> None:
        live = deployment([WEB])
        live["metadata"]["ownerReferences"] = [{"uid": "1", "name": "a", "kind": "X"}]
        patch = {
            "metadata": {
                "ownerReferences": [{"uid": "1", "name": "b"}, {"uid": "2", "name": "c", "kind": "Y"}]
            }
        }
        assert smp(live, patch)["metadata"]["ownerReferences"] == [
            {"uid": "1", "name": "b", "kind": "X"},
            {"uid": "2", "name": "c", "kind": "Y"},
        ]

    def test_a_first_apply_to_an_object_without_the_list(self) -> None:
        live = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
        patch = template_patch(
            {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                "containers": [WEB, LOG],
            }
        )
        assert containers_of(smp(live, patch)) == [WEB, LOG]


# --- strategic merge patch: the rules one by one -------------------------------------------


class TestStrategicLists:
    def test_new_item_without_order_goes_first_as_in_kubernetes(self) -> None:
        # normalizeElementOrder/mergeSortedSlice put a patch item the server does not know
        # before the server-only items; kubectl apply avoids this with $setElementOrder.
        result = smp(deployment([WEB, LOG]), template_patch({"containers": [{"name": "new"}]}))
        assert names(containers_of(result)) == ["new", "web", "log"]

    def test_patch_order_wins_over_live_order_for_named_items(self) -> None:
        a, b, c = ({"name": n} for n in "abc")
        result = smp(deployment([a, b, c]), template_patch({"containers": [{"name": "c"}, {"name": "a"}]}))
        assert names(containers_of(result)) == ["b", "c", "a"]

    def test_new_item_after_a_matched_one(self) -> None:
        a, b, c = ({"name": n} for n in "abc")
        patch = template_patch({"containers": [{"name": "b", "image": "x"}, {"name": "d"}]})
        result = smp(deployment([a, b, c]), patch)
        assert names(containers_of(result)) == ["a", "b", "d", "c"]

    def test_item_merge_is_recursive(self) -> None:
        web = {**WEB, "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
        patch = template_patch({"containers": [{"name": "web", "resources": {"limits": {"cpu": "2"}}}]})
        result = smp(deployment([web]), patch)
        assert containers_of(result)[0]["resources"] == {"limits": {"cpu": "2", "memory": "1Gi"}}

    def test_delete_of_an_unknown_item_is_a_no_op(self) -> None:
        result = smp(deployment([WEB]), template_patch({"containers": [{"$patch": "delete", "name": "zzz"}]}))
        assert containers_of(result) == [WEB]

    def test_replace_directive_replaces_the_whole_list(self) -> None:
        patch = template_patch({"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]})
        result = smp(deployment([WEB, LOG]), patch)
        assert containers_of(result) == [{"name": "only", "image": "x"}]

    def test_replace_directive_on_one_item_replaces_that_item(self) -> None:
        patch = template_patch({"containers": [{"$patch": "replace", "name": "web", "image": "x"}]})
        result = smp(deployment([WEB, LOG]), patch)
        assert containers_of(result) == [{"name": "web", "image": "x"}, LOG]

    def test_merge_directive_is_accepted(self) -> None:
        patch = template_patch(
            {"containers": [{"$patch": "merge"}, {"$patch": "merge", "name": "web", "image": "x"}]}
        )
        result = smp(deployment([WEB, LOG]), patch)
        assert containers_of(result) == [{**WEB, "image": "x"}, LOG]

    def test_null_list_removes_it(self) -> None:
        live = deployment([WEB])
        live["spec"]["template"]["spec"]["tolerations"] = [{"key": "a"}]
        result = smp(live, template_patch({"tolerations": None, "$setElementOrder/tolerations": []}))
        assert "tolerations" not in result["spec"]["template"]["spec"]

    def test_lists_without_merge_key_are_replaced(self) -> None:
        live = deployment([WEB])
        live["spec"]["template"]["spec"]["tolerations"] = [{"key": "a"}, {"key": "b"}]
        result = smp(live, template_patch({"tolerations": [{"key": "c", "extra": None}]}))
        assert result["spec"]["template"]["spec"]["tolerations"] == [{"key": "c"}]

    def test_scalar_merge_lists_are_unioned_without_duplicates(self) -> None:
        live = deployment([WEB])
        live["metadata"]["finalizers"] = ["a", "b", "a"]
        result = smp(
            live, {"metadata": {"$setElementOrder/finalizers": ["a", "b", "c"], "finalizers": ["c", "b"]}}
        )
        assert result["metadata"]["finalizers"] == ["a", "b", "c"]

    def test_scalar_merge_list_without_order(self) -> None:
        live = {"metadata": {"finalizers": ["a", "b"]}}
        assert smp(live, {"metadata": {"finalizers": ["b", "c"]}})["metadata"]["finalizers"] == [
            "a",
            "b",
            "c",
        ]

    def test_delete_from_primitive_list_without_the_list_in_live(self) -> None:
        assert smp({"metadata": {}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}) == {
            "metadata": {}
        }

    def test_set_element_order_naming_missing_items_is_ignored(self) -> None:
        patch = template_patch(
            {"$setElementOrder/containers": [{"name": "ghost"}, {"name": "log"}, {"name": "web"}]}
        )
        assert names(containers_of(smp(deployment([WEB, LOG]), patch))) == ["log", "web"]

    def test_type_change_replaces(self) -> None:
        live = {"spec": {"template": {"spec": {"containers": {"odd": "map"}}}}}
        result = smp(live, template_patch({"containers": [{"name": "a", "env": None}]}))
        assert containers_of(result) == [{"name": "a"}]


class TestStrategicMaps:
    def test_replace_directive_on_a_map(self) -> None:
        live = deployment([WEB])
        live["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a", "disk": "ssd"}
        patch = template_patch({"nodeSelector": {"$patch": "replace", "gpu": "yes"}})
        assert smp(live, patch)["spec"]["template"]["spec"]["nodeSelector"] == {"gpu": "yes"}

    def test_delete_directive_on_a_map(self) -> None:
        live = deployment([WEB], strategy={"type": "Recreate"})
        assert "strategy" not in smp(live, {"spec": {"strategy": {"$patch": "delete"}}})["spec"]

    def test_merge_directive_on_a_map(self) -> None:
        result = smp({"a": {"b": 1}}, {"a": {"$patch": "merge", "c": 2}}, None)
        assert result == {"a": {"b": 1, "c": 2}}

    def test_delete_directive_at_the_root_leaves_an_empty_object(self) -> None:
        assert smp({"a": 1}, {"$patch": "delete"}) == {}

    def test_directives_in_new_subtrees_are_removed(self) -> None:
        patch = {
            "spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                "template": {"metadata": {"labels": {"$patch": "replace", "a": "b"}}},
            }
        }
        result = smp({}, patch)
        assert result == {
            "spec": {"strategy": {"type": "Recreate"}, "template": {"metadata": {"labels": {"a": "b"}}}}
        }

    def test_retain_keys_must_list_what_the_patch_sets(self) -> None:
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}
        with pytest.raises(BadRequest, match=r"spec\.strategy.*rollingUpdate"):
            strategic_merge_patch({}, patch, DEPLOYMENT)

    def test_unknown_schema_falls_back_to_merge_patch(self) -> None:
        # spec.selector is Raw: its lists are replaced, its maps merged.
        live = deployment([WEB])
        live["spec"]["selector"] = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "a"}]}
        patch = {"spec": {"selector": {"matchLabels": {"tier": "x"}, "matchExpressions": [{"key": "b"}]}}}
        assert smp(live, patch)["spec"]["selector"] == {
            "matchLabels": {"app": "web", "tier": "x"},
            "matchExpressions": [{"key": "b"}],
        }

    def test_without_a_schema_lists_are_replaced_and_directives_still_obeyed(self) -> None:
        live = {"items": [{"name": "a"}], "m": {"x": 1, "y": 2}}
        patch = {"items": [{"name": "b"}, {"$patch": "replace"}], "m": {"$patch": "replace", "z": 3}}
        assert smp(live, patch, None) == {"items": [{"name": "b"}], "m": {"z": 3}}

    def test_dollar_keys_that_are_not_directives_are_data(self) -> None:
        live = {"status": {"schema": {"$ref": "#/a"}}}
        assert smp(live, {"status": {"schema": {"$schema": "draft"}}}) == {
            "status": {"schema": {"$ref": "#/a", "$schema": "draft"}}
        }

    def test_result_shares_nothing_with_the_inputs(self) -> None:
        live = deployment([WEB, LOG])
        patch = template_patch({"containers": [{"name": "new", "env": [{"name": "A"}]}]})
        result = strategic_merge_patch(live, patch, DEPLOYMENT)
        result["metadata"]["labels"]["x"] = "y"
        containers_of(result)[0]["env"].append({"name": "B"})
        assert "x" not in live["metadata"]["labels"]
        assert patch["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A"}]


class TestStrategicErrors:
    @pytest.mark.parametrize(
        ("patch", "message"),
        [
            ({"spec": {"$patch": "explode"}}, r'spec: unknown \$patch directive "explode"'),
            (template_patch({"containers": [{"$patch": "bogus"}]}), r"containers\[0\]: unknown \$patch"),
            (template_patch({"containers": [{"image": "x"}]}), r"containers\[0\].*merge key 'name'"),
            (template_patch({"containers": ["web"]}), r"containers\[0\].*not a string"),
            (template_patch({"containers": [{"$patch": "delete"}]}), r"merge key 'name'"),
            (template_patch({"$setElementOrder/containers": "web"}), r"must be a list"),
            (template_patch({"$setElementOrder/containers": ["web"]}), r"setElementOrder.*merge key"),
            ({"metadata": {"$deleteFromPrimitiveList/finalizers": [{"a": 1}]}}, r"list of scalar values"),
            ({"metadata": {"finalizers": [["a"]]}}, r"finalizers\[0\].*expected a scalar"),
            ({"spec": {"strategy": {"$retainKeys": "type"}}}, r"retainKeys must be a list"),
        ],
    )
    def test_malformed_patches_are_bad_requests(self, patch: Json, message: str) -> None:
        with pytest.raises(BadRequest, match=message):
            strategic_merge_patch(deployment([WEB]), patch, DEPLOYMENT)

    def test_patch_must_be_an_object(self) -> None:
        with pytest.raises(BadRequest, match="must be a JSON object"):
            strategic_merge_patch({}, [1], DEPLOYMENT)


# --- RFC 7386 ------------------------------------------------------------------------------

RFC7386_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


class TestMergePatch:
    @pytest.mark.parametrize(("original", "patch", "expected"), RFC7386_EXAMPLES)
    def test_rfc7386_appendix_a(self, original: Json, patch: Json, expected: Json) -> None:
        before = copy.deepcopy((original, patch))
        assert merge_patch(original, patch) == expected
        assert (original, patch) == before

    def test_rfc7386_section_3_example(self) -> None:
        original = {
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged",
        }
        patch = {
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": None},
            "tags": ["example"],
        }
        assert merge_patch(original, patch) == {
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890",
        }

    def test_result_shares_nothing_with_the_inputs(self) -> None:
        original = {"a": {"b": [1]}, "c": {"d": 1}}
        patch = {"e": {"f": [2]}}
        result = merge_patch(original, patch)
        result["a"]["b"].append(9)
        result["e"]["f"].append(9)
        assert original == {"a": {"b": [1]}, "c": {"d": 1}}
        assert patch == {"e": {"f": [2]}}

    def test_directives_mean_nothing_to_a_merge_patch(self) -> None:
        assert merge_patch({}, {"$patch": "delete"}) == {"$patch": "delete"}


# --- RFC 6902 ------------------------------------------------------------------------------

RFC6902_EXAMPLES = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    (
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    (
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ({"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
    ({"a": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
    ({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}], {"a": 1}),
]


class TestJsonPatch:
    @pytest.mark.parametrize(("original", "ops", "expected"), RFC6902_EXAMPLES)
    def test_rfc6902_appendix_a(self, original: Json, ops: Json, expected: Json) -> None:
        before = copy.deepcopy((original, ops))
        assert json_patch(original, ops) == expected
        assert (original, ops) == before

    def test_operations_apply_in_order(self) -> None:
        ops = [
            {"op": "add", "path": "/spec/replicas", "value": 3},
            {"op": "test", "path": "/spec/replicas", "value": 3},
            {"op": "remove", "path": "/metadata/labels/old"},
        ]
        live = {"metadata": {"labels": {"old": "1", "new": "2"}}, "spec": {}}
        assert json_patch(live, ops) == {"metadata": {"labels": {"new": "2"}}, "spec": {"replicas": 3}}

    def test_an_added_value_is_not_shared_with_the_patch(self) -> None:
        ops = [{"op": "add", "path": "/a", "value": {"b": []}}]
        result = json_patch({}, ops)
        result["a"]["b"].append(1)
        assert ops[0]["value"] == {"b": []}

    @pytest.mark.parametrize(
        ("ops", "message"),
        [
            (
                [{"op": "test", "path": "/baz", "value": "bar"}],
                r'operation 0 \(test /baz\) failed: the value is "qux", not "bar"',
            ),
            (
                [{"op": "test", "path": "/nope", "value": 1}],
                r"operation 0 \(test /nope\) failed: there is no value at /nope",
            ),
            ([{"op": "test", "path": "/n", "value": True}], r"the value is 1, not true"),
            ([{"op": "test", "path": "/n", "value": "1"}], r'the value is 1, not "1"'),
            (
                [{"op": "add", "path": "/baz/bat", "value": "qux"}],
                r"operation 0 \(add /baz/bat\).*/baz is a string",
            ),
            ([{"op": "add", "path": "/x/y", "value": 1}], r"operation 0 \(add /x/y\).*/x does not exist"),
            ([{"op": "remove", "path": "/missing"}], r"there is no value at /missing"),
            ([{"op": "replace", "path": "/list/7", "value": 1}], r"there is no value at /list/7"),
            ([{"op": "add", "path": "/list/7", "value": 1}], r"'7' is not a valid index into an array of 2"),
            ([{"op": "move", "from": "/gone", "path": "/x"}], r"there is no value at /gone to move"),
            ([{"op": "copy", "from": "/gone", "path": "/x"}], r"there is no value at /gone to copy"),
            ([{"op": "remove", "path": ""}], r"whole"),
            (
                [{"op": "add", "path": "/ok", "value": 1}, {"op": "remove", "path": "/missing"}],
                r"operation 1 \(remove /missing\)",
            ),
        ],
    )
    def test_a_patch_that_does_not_fit_the_object_is_invalid(self, ops: Json, message: str) -> None:
        live = {"baz": "qux", "n": 1, "list": [1, 2]}
        with pytest.raises(Invalid, match=message) as info:
            json_patch(live, ops)
        assert info.value.code == 422

    @pytest.mark.parametrize(
        ("ops", "message"),
        [
            ({"op": "add", "path": "/a", "value": 1}, r"must be a JSON array of operations, not an object"),
            ("add", r"must be a JSON array"),
            ([["add"]], r"operation 0 must be a JSON object, not an array"),
            ([{"path": "/a"}], r"operation 0 has no op"),
            ([{"op": "frob", "path": "/a"}], r'operation 0 has op "frob": supported ops are add, remove'),
            ([{"op": "add", "value": 1}], r'operation 0 \(add\) has no "path" member'),
            ([{"op": "add", "path": "/a"}], r'operation 0 \(add\) has no "value" member'),
            ([{"op": "test", "path": "/a"}], r'has no "value" member'),
            ([{"op": "move", "path": "/a"}], r'operation 0 \(move\) has no "from" member'),
            ([{"op": "remove", "path": "a"}], r'invalid "path" "a": .* start with "/"'),
            ([{"op": "remove", "path": 5}], r'invalid "path" 5: a JSON pointer must be a string'),
            ([{"op": "remove", "path": "/a~2"}], r'"~" must be followed by "0" or "1"'),
            ([{"op": "copy", "from": "x", "path": "/a"}], r'invalid "from" "x"'),
            (
                [{"op": "add", "path": "/a", "value": 1}, {"op": "nope", "path": "/b"}],
                r'operation 1 has op "nope"',
            ),
        ],
    )
    def test_a_malformed_patch_is_a_bad_request(self, ops: Json, message: str) -> None:
        with pytest.raises(BadRequest, match=message) as info:
            json_patch({"a": 1}, ops)
        assert info.value.code == 400

    def test_nothing_is_applied_when_a_later_operation_is_malformed(self) -> None:
        live = {"a": 1}
        with pytest.raises(BadRequest):
            json_patch(live, [{"op": "remove", "path": "/a"}, {"op": "add"}])
        assert live == {"a": 1}

    def test_too_many_operations(self) -> None:
        ops = [{"op": "test", "path": "", "value": {}}] * (MAX_JSON_PATCH_OPERATIONS + 1)
        with pytest.raises(RequestTooLarge, match="10000"):
            json_patch({}, ops)

    def test_an_empty_patch_changes_nothing(self) -> None:
        assert json_patch({"a": [1]}, []) == {"a": [1]}


# --- apply_patch ---------------------------------------------------------------------------


class TestApplyPatch:
    LIVE = deployment([WEB, LOG])

    def body(self, value: Json) -> bytes:
        return orjson.dumps(value)

    def test_merge_patch_replaces_lists(self) -> None:
        patch = template_patch({"containers": [{"name": "web", "image": "x"}]})
        result = apply_patch(self.LIVE, self.body(patch), MERGE_PATCH, DEPLOYMENT)
        assert containers_of(result) == [{"name": "web", "image": "x"}]

    def test_strategic_patch_merges_lists(self) -> None:
        patch = template_patch({"containers": [{"name": "web", "image": "x"}]})
        result = apply_patch(self.LIVE, self.body(patch), STRATEGIC_MERGE_PATCH, DEPLOYMENT)
        assert containers_of(result) == [{**WEB, "image": "x"}, LOG]

    def test_json_patch(self) -> None:
        ops = [{"op": "replace", "path": "/spec/replicas", "value": 7}]
        assert apply_patch(self.LIVE, self.body(ops), JSON_PATCH, DEPLOYMENT)["spec"]["replicas"] == 7

    def test_content_type_parameters_and_case_are_ignored(self) -> None:
        result = apply_patch({}, b'{"a":1}', "Application/Merge-Patch+JSON; charset=utf-8", None)
        assert result == {"a": 1}

    @pytest.mark.parametrize("content_type", [MERGE_PATCH, STRATEGIC_MERGE_PATCH, JSON_PATCH])
    def test_malformed_json_names_the_content_type(self, content_type: str) -> None:
        with pytest.raises(BadRequest, match=f"{content_type.replace('+', '[+]')} patch is not valid JSON"):
            apply_patch({}, b"{nope", content_type, None)

    def test_an_empty_body_is_malformed(self) -> None:
        with pytest.raises(BadRequest, match="not valid JSON"):
            apply_patch({}, b"", MERGE_PATCH, None)

    @pytest.mark.parametrize("content_type", [MERGE_PATCH, STRATEGIC_MERGE_PATCH])
    def test_merge_bodies_must_be_objects(self, content_type: str) -> None:
        with pytest.raises(BadRequest, match="must be a JSON object, not an array"):
            apply_patch({}, b"[1]", content_type, None)

    def test_server_side_apply_is_not_supported_yet(self) -> None:
        with pytest.raises(UnsupportedMediaType, match="server-side apply") as info:
            apply_patch({}, b"a: 1", APPLY_PATCH, None)
        assert info.value.code == 415

    @pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
    def test_unknown_content_types_list_the_supported_ones(self, content_type: str) -> None:
        with pytest.raises(UnsupportedMediaType) as info:
            apply_patch({}, b"{}", content_type, None)
        for supported in (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH):
            assert supported in info.value.message


# --- properties ----------------------------------------------------------------------------

KEYS = st.text(alphabet="abcxyz", min_size=1, max_size=3)
SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.text(alphabet="ab", max_size=2)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=15,
)
JSON_OBJECTS = st.dictionaries(KEYS, JSON_VALUES, max_size=5)
# dict-only data: what a merge patch and a schema-less strategic patch must agree on
DICT_VALUES = st.recursive(SCALARS, lambda inner: st.dictionaries(KEYS, inner, max_size=4), max_leaves=15)
DICT_OBJECTS = st.dictionaries(KEYS, DICT_VALUES, max_size=5)


def without_nulls(value: Json) -> Json:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


class TestProperties:
    @given(JSON_OBJECTS)
    def test_empty_merge_patch_is_identity(self, doc: Json) -> None:
        assert merge_patch(doc, {}) == doc

    @given(JSON_VALUES, JSON_VALUES)
    def test_merge_patch_is_idempotent(self, doc: Json, patch: Json) -> None:
        once = merge_patch(doc, patch)
        assert merge_patch(once, patch) == once

    @given(JSON_VALUES, JSON_VALUES)
    def test_merge_patch_never_mutates(self, doc: Json, patch: Json) -> None:
        before = copy.deepcopy((doc, patch))
        merge_patch(doc, patch)
        assert (doc, patch) == before

    @given(DICT_OBJECTS)
    def test_merge_patch_by_itself_from_nothing_drops_nulls(self, patch: Json) -> None:
        assert merge_patch({}, patch) == without_nulls(patch)

    @given(DICT_OBJECTS, DICT_OBJECTS)
    def test_strategic_without_schema_equals_merge_patch_on_dicts(self, doc: Json, patch: Json) -> None:
        assert strategic_merge_patch(doc, patch, None) == merge_patch(doc, patch)

    @given(DICT_OBJECTS, DICT_OBJECTS)
    def test_strategic_with_schema_equals_merge_patch_on_dicts_it_does_not_know(
        self, doc: Json, patch: Json
    ) -> None:
        assert strategic_merge_patch(doc, patch, DEPLOYMENT) == merge_patch(doc, patch)

    @given(JSON_OBJECTS)
    def test_empty_strategic_patch_is_identity(self, doc: Json) -> None:
        assert strategic_merge_patch(doc, {}, DEPLOYMENT) == doc

    @settings(max_examples=200)
    @given(JSON_VALUES, JSON_VALUES)
    def test_json_patch_from_a_diff_reproduces_the_target(self, source: Json, target: Json) -> None:
        ops = list(jsonpatch.make_patch(source, target))
        assert json_patch(source, ops) == target


NAMES = st.sampled_from(["a", "b", "c", "d", "e"])
ENV_ITEMS = st.lists(
    st.fixed_dictionaries({"name": NAMES}, optional={"value": st.sampled_from(["1", "2"])}),
    max_size=3,
)
CONTAINER_ITEMS = st.fixed_dictionaries(
    {"name": NAMES},
    optional={
        "image": st.sampled_from(["x", "y"]),
        "env": ENV_ITEMS,
        "args": st.lists(st.sampled_from("pq")),
    },
)


def unique_by_name(items: list[Json]) -> list[Json]:
    seen: dict[str, Json] = {}
    for item in items:
        seen.setdefault(item["name"], item)
    return list(seen.values())


LIVE_CONTAINERS = st.lists(CONTAINER_ITEMS, max_size=5).map(unique_by_name)
PATCH_ITEMS = CONTAINER_ITEMS | st.fixed_dictionaries({"name": NAMES, "$patch": st.just("delete")})
PATCH_CONTAINERS = st.lists(PATCH_ITEMS, max_size=4)
ORDERS = st.none() | st.lists(NAMES, unique=True).map(lambda ns: [{"name": n} for n in ns])


class TestStrategicProperties:
    @settings(max_examples=300)
    @given(LIVE_CONTAINERS, PATCH_CONTAINERS, ORDERS)
    def test_strategic_patch_is_idempotent(self, live: list[Json], items: list[Json], order: Json) -> None:
        # A patch that both deletes and sets one name contradicts itself (Kubernetes too
        # deletes first, then merges), so applying it twice need not give the same list.
        deleted = {i["name"] for i in items if i.get("$patch") == "delete"}
        assume(not deleted & {i["name"] for i in items if "$patch" not in i})
        pod_spec: Json = {"containers": items}
        if order is not None:
            pod_spec["$setElementOrder/containers"] = order
        patch = template_patch(pod_spec)
        once = smp(deployment(live), patch)
        assert smp(once, patch) == once

    @settings(max_examples=300)
    @given(LIVE_CONTAINERS, PATCH_CONTAINERS)
    def test_keyed_list_merge_keeps_every_name_once(self, live: list[Json], items: list[Json]) -> None:
        result = containers_of(smp(deployment(live), template_patch({"containers": items})))
        deleted = {i["name"] for i in items if i.get("$patch") == "delete"}
        added = {i["name"] for i in items if "$patch" not in i}
        expected = ({c["name"] for c in live} - deleted) | added
        assert sorted(names(result)) == sorted(expected)

    @settings(max_examples=300)
    @given(LIVE_CONTAINERS, st.lists(NAMES, unique=True))
    def test_set_element_order_is_honoured(self, live: list[Json], order: list[str]) -> None:
        patch = template_patch({"$setElementOrder/containers": [{"name": n} for n in order]})
        result = names(containers_of(smp(deployment(live), patch)))
        assert sorted(result) == sorted(names(live))
        listed = [n for n in result if n in order]
        assert listed == [n for n in order if n in listed]
