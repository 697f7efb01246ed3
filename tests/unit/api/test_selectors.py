"""Tests of label and field selectors (Kubernetes syntax and semantics)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.api.errors import BadRequest
from shoal.api.selectors import (
    DOES_NOT_EXIST,
    EQUALS,
    EXISTS,
    IN,
    NOT_EQUALS,
    NOT_IN,
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    Requirement,
    escape_field_value,
    label_selector_errors,
)

WEB = {"app": "web", "tier": "front", "env": "prod"}
DB = {"app": "db", "tier": "back"}
NONE: dict[str, str] = {}


class TestLabelSelectorParse:
    @pytest.mark.parametrize(
        ("text", "requirements"),
        [
            ("a=b", [Requirement("a", EQUALS, ("b",))]),
            ("a==b", [Requirement("a", EQUALS, ("b",))]),
            ("a!=b", [Requirement("a", NOT_EQUALS, ("b",))]),
            ("a in (x,y)", [Requirement("a", IN, ("x", "y"))]),
            ("a notin (y, x)", [Requirement("a", NOT_IN, ("x", "y"))]),
            ("a", [Requirement("a", EXISTS)]),
            ("!a", [Requirement("a", DOES_NOT_EXIST)]),
            ("a=", [Requirement("a", EQUALS, ("",))]),
            ("a in (x,)", [Requirement("a", IN, ("", "x"))]),
            ("a in ()", [Requirement("a", IN, ("",))]),
            ("a=in", [Requirement("a", EQUALS, ("in",))]),
            (
                "  b = c ,  a  in(x)  , ! d ",
                [
                    Requirement("a", IN, ("x",)),
                    Requirement("b", EQUALS, ("c",)),
                    Requirement("d", DOES_NOT_EXIST),
                ],
            ),
            (
                "app.kubernetes.io/name=web,example.com/tier!=x",
                [
                    Requirement("app.kubernetes.io/name", EQUALS, ("web",)),
                    Requirement("example.com/tier", NOT_EQUALS, ("x",)),
                ],
            ),
        ],
    )
    def test_syntax(self, text: str, requirements: list[Requirement]) -> None:
        assert list(LabelSelector.parse(text).requirements) == requirements

    @pytest.mark.parametrize("text", ["", "   "])
    def test_empty_selects_everything(self, text: str) -> None:
        selector = LabelSelector.parse(text)
        assert selector.empty
        assert selector == LabelSelector.everything()
        assert selector.matches(None)
        assert selector.matches(WEB)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("a=b,", r"found end of string at position 4, expected a label key"),
            (",a", r"found ',' at position 0, expected a label key"),
            ("a b", r"found 'b' at position 2, expected '=', '==', '!=', 'in', 'notin'"),
            ("a=b c", r"found 'c' at position 4, expected ',' or end of string"),
            ("!a=b", r"found '=' at position 2, expected ',' or end of string after '!a'"),
            ("!", r"found end of string at position 1, expected a label key after '!'"),
            ("a in x", r"found 'x' at position 5, expected '\(' after 'in'"),
            ("a in (x y)", r"found 'y' at position 8, expected ',' or '\)'"),
            ("a in (x", r"found end of string at position 7, expected ',' or '\)'"),
            ("a>b", r"expected an integer after '>'"),
            ("a=(b)", r"found '\(' at position 2"),
            ("=b", r"found '=' at position 0, expected a label key"),
        ],
    )
    def test_syntax_errors_name_the_selector_and_position(self, text: str, message: str) -> None:
        with pytest.raises(BadRequest, match=message) as info:
            LabelSelector.parse(text)
        assert info.value.code == 400
        assert "unable to parse requirement" in info.value.message
        assert repr(text) in info.value.message

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("-a=b", r"key '-a' at position 0: name part must consist of"),
            ("x/=b", r"key 'x/'.*name part must be non-empty"),
            ("Foo_/a=b", r"key 'Foo_/a'.*prefix part"),
            ("a" * 64 + "=b", r"name part must be no more than 63 characters"),
            ("a=-b", r"value '-b' of 'a' at position 2: a valid label must be"),
            ("a in (ok, bad-)", r"value 'bad-' of 'a'"),
            ("a=" + "v" * 64, r"must be no more than 63 characters"),
        ],
    )
    def test_keys_and_values_are_validated(self, text: str, message: str) -> None:
        with pytest.raises(BadRequest, match=message):
            LabelSelector.parse(text)

    def test_canonical_string_round_trips(self) -> None:
        selector = LabelSelector.parse("z notin (b,a), !y, x>3, w<4, v, u!=t, s==r")
        assert str(selector) == "s=r,u!=t,v,w<4,x>3,!y,z notin (a,b)"
        assert LabelSelector.parse(str(selector)) == selector

    def test_parse_is_cached(self) -> None:
        assert LabelSelector.parse("app=web,tier=x") is LabelSelector.parse("app=web,tier=x")


class TestLabelSelectorMatches:
    @pytest.mark.parametrize(
        ("text", "web", "db", "none"),
        [
            ("app=web", True, False, False),
            ("app==web", True, False, False),
            ("app!=web", False, True, True),
            ("app in (web,db)", True, True, False),
            ("app notin (web)", False, True, True),
            ("env", True, False, False),
            ("!env", False, True, True),
            ("app=web,tier=front", True, False, False),
            ("app=web,tier=back", False, False, False),
            ("tier,!env", False, True, False),
            ("env=", False, False, False),
            ("env!=", True, True, True),
        ],
    )
    def test_semantics(self, text: str, web: bool, db: bool, none: bool) -> None:
        selector = LabelSelector.parse(text)
        assert (selector.matches(WEB), selector.matches(DB), selector.matches(NONE)) == (web, db, none)
        assert selector.matches(None) is none

    def test_empty_value_matches_an_empty_label(self) -> None:
        assert LabelSelector.parse("a=").matches({"a": ""})
        assert LabelSelector.parse("a in (,x)").matches({"a": ""})

    @pytest.mark.parametrize(
        ("text", "labels", "expected"),
        [
            ("n>3", {"n": "4"}, True),
            ("n>3", {"n": "3"}, False),
            ("n<3", {"n": "-1"}, True),
            ("n<3", {"n": "x"}, False),
            ("n<3", {}, False),
        ],
    )
    def test_numeric_comparisons(self, text: str, labels: dict[str, str], expected: bool) -> None:
        assert LabelSelector.parse(text).matches(labels) is expected

    def test_requirement_matches_on_its_own(self) -> None:
        assert Requirement("a", IN, ("x", "y")).matches({"a": "y"})
        assert not Requirement("a", NOT_IN, ("x", "y")).matches({"a": "y"})


class TestLabelSelectorFromObject:
    def test_none_matches_nothing(self) -> None:
        selector = LabelSelector.from_object(None)
        assert selector == LabelSelector.nothing()
        assert not selector.empty
        assert not selector.matches({})
        assert not selector.matches(WEB)
        assert repr(selector) == "LabelSelector(nothing)"

    @pytest.mark.parametrize("obj", [{}, {"matchLabels": {}}, {"matchLabels": None, "matchExpressions": []}])
    def test_empty_matches_everything(self, obj: dict[str, Any]) -> None:
        selector = LabelSelector.from_object(obj)
        assert selector.empty
        assert selector.matches({})
        assert selector.matches(WEB)

    def test_match_labels_and_expressions(self) -> None:
        selector = LabelSelector.from_object(
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "env", "operator": "Exists"},
                    {"key": "zone", "operator": "NotIn", "values": ["b"]},
                ],
            }
        )
        assert str(selector) == "app=web,!canary,env,tier in (edge,front),zone notin (b)"
        assert selector.matches(WEB)
        assert not selector.matches({**WEB, "canary": "1"})
        assert not selector.matches({**WEB, "zone": "b"})
        assert not selector.matches(DB)
        assert selector == LabelSelector.parse(str(selector))

    def test_from_labels(self) -> None:
        selector = LabelSelector.from_labels({"app": "web", "tier": "front"})
        assert selector.matches(WEB)
        assert not selector.matches(DB)
        assert LabelSelector.from_labels({}).empty
        assert LabelSelector.from_labels(None).empty

    @pytest.mark.parametrize(
        ("obj", "message"),
        [
            ({"matchExpressions": [{"key": "a", "operator": "Foo"}]}, "not a valid selector operator"),
            (
                {"matchExpressions": [{"key": "a", "operator": "In"}]},
                "must be specified when `operator` is 'In'",
            ),
            (
                {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
                "may not be specified when `operator` is 'Exists'",
            ),
            ({"matchExpressions": [{"operator": "Exists"}]}, r"matchExpressions\[0\]\.key: Required value"),
            ({"matchLabels": {"-x": "y"}}, r"selector\.matchLabels: Invalid value: \"-x\""),
            ({"matchLabels": {"x": "-y"}}, r"selector\.matchLabels\[x\]: Invalid value: \"-y\""),
            ({"matchLabels": {"x": 1}}, r"must be a string"),
        ],
    )
    def test_invalid_selectors_are_bad_requests(self, obj: dict[str, Any], message: str) -> None:
        with pytest.raises(BadRequest, match=message) as info:
            LabelSelector.from_object(obj)
        assert info.value.causes

    def test_label_selector_errors_for_admission(self) -> None:
        errors = label_selector_errors(
            {
                "matchExpressions": [
                    {"key": "ok", "operator": "In", "values": ["a"]},
                    {"key": "b", "operator": "NotIn"},
                ]
            },
            "spec.selector",
        )
        assert [(e.path, e.type) for e in errors] == [
            ("spec.selector.matchExpressions[1].values", "Required value")
        ]
        assert label_selector_errors(None, "spec.selector") == []
        assert label_selector_errors([], "spec.selector")[0].path == "spec.selector"
        assert label_selector_errors({"matchExpressions": {}}, "s")[0].path == "s.matchExpressions"


ALLOWED = {"metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"}


class TestFieldSelector:
    def test_syntax(self) -> None:
        selector = FieldSelector.parse("metadata.name=a,spec.nodeName==n1,status.phase!=Running", ALLOWED)
        assert selector.requirements == (
            FieldRequirement("metadata.name", EQUALS, "a"),
            FieldRequirement("spec.nodeName", EQUALS, "n1"),
            FieldRequirement("status.phase", NOT_EQUALS, "Running"),
        )
        assert selector.fields == {"metadata.name", "spec.nodeName", "status.phase"}
        assert str(selector) == "metadata.name=a,spec.nodeName=n1,status.phase!=Running"

    @pytest.mark.parametrize("text", ["", ",", " , "])
    def test_empty_selects_everything(self, text: str) -> None:
        selector = FieldSelector.parse(text, ALLOWED)
        assert selector.empty
        assert selector == FieldSelector.everything()
        assert selector.matches({})

    def test_matches(self) -> None:
        selector = FieldSelector.parse("spec.nodeName=n1,status.phase!=Succeeded", ALLOWED)
        assert selector.matches({"spec.nodeName": "n1", "status.phase": "Running"})
        assert not selector.matches({"spec.nodeName": "n2", "status.phase": "Running"})
        assert not selector.matches({"spec.nodeName": "n1", "status.phase": "Succeeded"})
        assert selector.matches({"spec.nodeName": "n1"})

    def test_empty_value_finds_unscheduled_pods(self) -> None:
        selector = FieldSelector.parse("spec.nodeName=", ALLOWED)
        assert selector.matches({"spec.nodeName": ""})
        assert selector.matches({})
        assert not selector.matches({"spec.nodeName": "n1"})

    def test_exact_values_narrow_store_reads(self) -> None:
        selector = FieldSelector.parse("metadata.namespace=ns,metadata.name!=x", ALLOWED)
        assert selector.exact("metadata.namespace") == "ns"
        assert selector.exact("metadata.name") is None
        assert selector.exact("spec.nodeName") is None

    def test_unsupported_field(self) -> None:
        with pytest.raises(BadRequest, match=r"^field label not supported: spec\.foo$") as info:
            FieldSelector.parse("metadata.name=a,spec.foo=b", ALLOWED)
        assert info.value.code == 400

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("metadata.name", r"can't understand 'metadata.name'"),
            ("=x", r"can't understand '=x'"),
            ("metadata.name<3", r"can't understand"),
            (r"metadata.name=a\b", r"invalid escape sequence '\\b'"),
            ("metadata.name=a\\", r"unfinished escape"),
        ],
    )
    def test_syntax_errors(self, text: str, message: str) -> None:
        with pytest.raises(BadRequest, match=message):
            FieldSelector.parse(text, ALLOWED)

    def test_escaped_values(self) -> None:
        selector = FieldSelector.parse(r"metadata.name=a\,b\=c\\d,status.phase=x", ALLOWED)
        assert selector.exact("metadata.name") == "a,b=c\\d"
        assert selector.exact("status.phase") == "x"
        assert FieldSelector.parse(str(selector), ALLOWED) == selector

    def test_spaces_around_names_and_values_are_dropped(self) -> None:
        selector = FieldSelector.parse(" metadata.name = a , status.phase != b ", ALLOWED)
        assert str(selector) == "metadata.name=a,status.phase!=b"


# --- properties ----------------------------------------------------------------------------

LABEL_KEYS = st.sampled_from(["a", "b", "app.kubernetes.io/name", "x-y_z.1"])
LABEL_VALUES = st.sampled_from(["", "v", "w", "web-1", "in", "notin"])
REQUIREMENTS = st.one_of(
    st.builds(lambda k, v: Requirement(k, EQUALS, (v,)), LABEL_KEYS, LABEL_VALUES),
    st.builds(lambda k, v: Requirement(k, NOT_EQUALS, (v,)), LABEL_KEYS, LABEL_VALUES),
    st.builds(
        lambda k, vs: Requirement(k, IN, tuple(sorted(vs))), LABEL_KEYS, st.sets(LABEL_VALUES, min_size=1)
    ),
    st.builds(
        lambda k, vs: Requirement(k, NOT_IN, tuple(sorted(vs))), LABEL_KEYS, st.sets(LABEL_VALUES, min_size=1)
    ),
    st.builds(lambda k: Requirement(k, EXISTS), LABEL_KEYS),
    st.builds(lambda k: Requirement(k, DOES_NOT_EXIST), LABEL_KEYS),
)
LABELS = st.dictionaries(LABEL_KEYS, LABEL_VALUES)


def model_matches(requirement: Requirement, labels: dict[str, str]) -> bool:
    """Kubernetes' Requirement.Matches, written out plainly."""
    present = requirement.key in labels
    value = labels.get(requirement.key)
    op = requirement.operator
    if op in (EQUALS, IN):
        return present and value in requirement.values
    if op in (NOT_EQUALS, NOT_IN):
        return not present or value not in requirement.values
    if op == EXISTS:
        return present
    return not present


class TestProperties:
    @given(st.lists(REQUIREMENTS, max_size=5))
    def test_string_form_round_trips(self, requirements: list[Requirement]) -> None:
        selector = LabelSelector(requirements)
        assert LabelSelector.parse(str(selector)) == selector

    @given(st.lists(REQUIREMENTS, max_size=5), LABELS)
    def test_matches_agrees_with_the_model(
        self, requirements: list[Requirement], labels: dict[str, str]
    ) -> None:
        expected = all(model_matches(r, labels) for r in requirements)
        assert LabelSelector(requirements).matches(labels) is expected

    @given(st.text(alphabet="ab=!,() in", max_size=12))
    def test_parse_raises_only_bad_request(self, text: str) -> None:
        with contextlib.suppress(BadRequest):
            LabelSelector.parse(text)

    @given(st.text(max_size=20))
    def test_field_values_escape_round_trip(self, value: str) -> None:
        value = value.strip()
        selector = FieldSelector.parse("metadata.name=" + escape_field_value(value), ALLOWED)
        assert selector.exact("metadata.name") == value

    @given(st.text(alphabet="ab=!,\\ ", max_size=12))
    def test_field_parse_raises_only_bad_request(self, text: str) -> None:
        with contextlib.suppress(BadRequest):
            FieldSelector.parse(text, {"a", "b", "ab"})
