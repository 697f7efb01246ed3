"""Label and field selectors, in Kubernetes' syntax (``?labelSelector=``, ``?fieldSelector=``,
``spec.selector`` of a Deployment or a Service).

The API server evaluates a selector against every object of a list and every event of a
watch, so a selector is parsed and validated once into a tuple of small closures, and
matching is a handful of dict lookups with no allocation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from shoal.api.errors import BadRequest, FieldError, forbidden, invalid, required
from shoal.api.validation import check, label_value, qualified_name

Labels = Mapping[str, str]
_Check = Callable[[Labels], bool]

# Operators, as Requirement.operator holds them (and as str() prints them).
EQUALS: Final = "="
NOT_EQUALS: Final = "!="
IN: Final = "in"
NOT_IN: Final = "notin"
EXISTS: Final = "exists"
DOES_NOT_EXIST: Final = "!"
GREATER_THAN: Final = "gt"
LESS_THAN: Final = "lt"

_OBJECT_OPERATORS: Final = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


@dataclass(frozen=True, slots=True)
class Requirement:
    """One condition on one label; ``values`` is sorted, so equal requirements compare equal."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        if self.operator in (EQUALS, NOT_EQUALS):
            return f"{self.key}{self.operator}{self.values[0]}"
        if self.operator == GREATER_THAN:
            return f"{self.key}>{self.values[0]}"
        if self.operator == LESS_THAN:
            return f"{self.key}<{self.values[0]}"
        return f"{self.key} {self.operator} ({','.join(self.values)})"

    def matches(self, labels: Labels) -> bool:
        return _compile(self)(labels)


def _compile(req: Requirement) -> _Check:
    key, op = req.key, req.operator
    if op == EQUALS:
        value = req.values[0]
        return lambda labels: labels.get(key) == value
    if op == NOT_EQUALS:
        value = req.values[0]
        return lambda labels: labels.get(key) != value
    if op == IN:
        values = frozenset(req.values)
        return lambda labels: labels.get(key) in values
    if op == NOT_IN:
        values = frozenset(req.values)
        return lambda labels: labels.get(key) not in values
    if op == EXISTS:
        return lambda labels: key in labels
    if op == DOES_NOT_EXIST:
        return lambda labels: key not in labels
    bound = int(req.values[0])
    greater = op == GREATER_THAN

    def compare(labels: Labels) -> bool:
        text = labels.get(key)
        if text is None or not _INTEGER.match(text):
            return False
        return int(text) > bound if greater else int(text) < bound

    return compare


_INTEGER: Final = re.compile(r"^[+-]?[0-9]+$")


class LabelSelector:
    """A conjunction of requirements on labels.

    Two selectors match no requirement at all and mean opposite things, as in Kubernetes:
    ``everything()`` (the empty string, ``{}``) matches every object; ``nothing()`` (a
    ``None`` selector, as ``from_object(None)`` gives) matches none, so that a controller
    whose selector is missing adopts nothing rather than everything.
    """

    __slots__ = ("_checks", "_nothing", "requirements")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        # Sorted by key as Kubernetes does, so str() is canonical and cheap checks (by key
        # order, usually app= before others) do not depend on how the user wrote them.
        self.requirements: tuple[Requirement, ...] = tuple(
            sorted(requirements, key=lambda r: (r.key, r.operator, r.values))
        )
        self._checks: tuple[_Check, ...] = tuple(_compile(r) for r in self.requirements)
        self._nothing = nothing

    @classmethod
    def everything(cls) -> LabelSelector:
        return _EVERYTHING

    @classmethod
    def nothing(cls) -> LabelSelector:
        return _NOTHING

    @property
    def empty(self) -> bool:
        """True when the selector matches every object (lets a server skip matching)."""
        return not self.requirements and not self._nothing

    def matches(self, labels: Labels | None) -> bool:
        if self._nothing:
            return False
        if labels is None:
            labels = _NO_LABELS
        for check_ in self._checks:  # noqa: SIM110 - a plain loop beats all(<generator>) here
            if not check_(labels):
                return False
        return True

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return "LabelSelector(nothing)" if self._nothing else f"LabelSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return self.requirements == other.requirements and self._nothing == other._nothing

    def __hash__(self) -> int:
        return hash((self.requirements, self._nothing))

    @staticmethod
    def parse(text: str) -> LabelSelector:
        """Parse ``?labelSelector=`` syntax; a malformed selector is a 400 BadRequest."""
        return _parse_label_selector(text)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> LabelSelector:
        """The selector of a plain map (a Service's ``spec.selector``): every pair must match."""
        if not labels:
            return _EVERYTHING
        problems = label_selector_errors({"matchLabels": dict(labels)}, "selector")
        if problems:
            raise _invalid_object(problems)
        return cls(Requirement(k, EQUALS, (v,)) for k, v in labels.items())

    @classmethod
    def from_object(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        """Compile a ``metav1.LabelSelector`` (matchLabels and matchExpressions).

        ``None`` matches nothing and ``{}`` matches everything, as Kubernetes'
        ``LabelSelectorAsSelector`` has it. A selector that does not validate (see
        ``label_selector_errors``, which kinds call at admission) is a 400 BadRequest.
        """
        if selector is None:
            return _NOTHING
        problems = label_selector_errors(selector, "selector")
        if problems:
            raise _invalid_object(problems)
        requirements = [Requirement(k, EQUALS, (v,)) for k, v in (selector.get("matchLabels") or {}).items()]
        for expression in selector.get("matchExpressions") or ():
            operator = _OBJECT_OPERATORS[expression["operator"]]
            values = tuple(sorted(set(expression.get("values") or ())))
            requirements.append(Requirement(expression["key"], operator, values))
        return cls(requirements)


_NO_LABELS: Final[Labels] = {}
_EVERYTHING: Final = LabelSelector()
_NOTHING: Final = LabelSelector(nothing=True)


def label_selector_errors(selector: Any, path: str) -> list[FieldError]:
    """Field errors of a ``metav1.LabelSelector`` at ``path``, worded as Kubernetes' own."""
    if selector is None:
        return []
    if not isinstance(selector, Mapping):
        return [invalid(path, selector, "must be an object")]
    errors: list[FieldError] = []
    match_labels = selector.get("matchLabels")
    if match_labels is not None:
        if not isinstance(match_labels, Mapping):
            errors.append(invalid(f"{path}.matchLabels", match_labels, "must be an object"))
        else:
            for key, value in match_labels.items():
                errors += check(f"{path}.matchLabels", key, qualified_name)
                if not isinstance(value, str):
                    errors.append(invalid(f"{path}.matchLabels[{key}]", value, "must be a string"))
                else:
                    errors += check(f"{path}.matchLabels[{key}]", value, label_value)
    expressions = selector.get("matchExpressions")
    if expressions is not None and not isinstance(expressions, list):
        return [*errors, invalid(f"{path}.matchExpressions", expressions, "must be an array")]
    for index, expression in enumerate(expressions or ()):
        where = f"{path}.matchExpressions[{index}]"
        if not isinstance(expression, Mapping):
            errors.append(invalid(where, expression, "must be an object"))
            continue
        key = expression.get("key")
        if not isinstance(key, str) or not key:
            errors.append(required(f"{where}.key"))
        else:
            errors += check(f"{where}.key", key, qualified_name)
        operator = expression.get("operator")
        values = expression.get("values")
        if operator not in _OBJECT_OPERATORS:
            errors.append(invalid(f"{where}.operator", operator, "not a valid selector operator"))
        elif not isinstance(values, list | None):
            errors.append(invalid(f"{where}.values", values, "must be an array of strings"))
        elif operator in ("In", "NotIn") and not values:
            errors.append(required(f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist") and values:
            detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            errors.append(forbidden(f"{where}.values", detail))
        for j, value in enumerate(values if isinstance(values, list) else ()):
            if not isinstance(value, str):
                errors.append(invalid(f"{where}.values[{j}]", value, "must be a string"))
            else:
                errors += check(f"{where}.values[{j}]", value, label_value)
    return errors


def _invalid_object(problems: list[FieldError]) -> BadRequest:
    listed = "; ".join(str(p) for p in problems)
    return BadRequest(f"invalid label selector: {listed}", causes=problems)


# --- the label selector language -----------------------------------------------------------
#
#   selector    ::= "" | requirement ("," requirement)*
#   requirement ::= "!" KEY | KEY [ ("=" | "==" | "!=") VALUE? | ("in" | "notin") "(" values ")"
#                                 | (">" | "<") INTEGER ]
#   values      ::= VALUE? ("," VALUE?)*          (an empty slot, or "()", is the empty value)
#
# Keys and values are runs of anything but whitespace and ``!=(),<>``; whitespace between
# tokens is ignored. ``in``/``notin`` are words, so ``app in (a)`` needs its spaces.

_TOKEN: Final = re.compile(r"\s*(?:(==|!=|[=!(),<>])|([^\s!=(),<>]+))")
_WORD: Final = "word"
_END: Final = "end"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # _WORD, _END, or the symbol itself
    text: str
    position: int

    def describe(self) -> str:
        return "end of string" if self.kind == _END else repr(self.text)


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._scan(text)
        self.at = 0

    def _scan(self, text: str) -> list[_Token]:
        tokens = []
        position = 0
        while True:
            match = _TOKEN.match(text, position)
            if match is None:
                break
            symbol, word = match.groups()
            start = match.start(1) if symbol else match.start(2)
            tokens.append(_Token(symbol or _WORD, symbol or word, start))
            position = match.end()
        tokens.append(_Token(_END, "", len(text.rstrip())))
        return tokens

    def fail(self, token: _Token, expected: str) -> BadRequest:
        return BadRequest(
            f"unable to parse requirement: found {token.describe()} at position {token.position}, "
            f"expected {expected}, in label selector {self.text!r}"
        )

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def parse(self) -> list[Requirement]:
        requirements = []
        while True:
            requirements.append(self.requirement())
            token = self.take()
            if token.kind == _END:
                return requirements
            if token.kind != ",":
                raise self.fail(token, "',' or end of string")

    def requirement(self) -> Requirement:
        token = self.take()
        if token.kind == "!":
            key = self.key(self.take(), "a label key after '!'")
            following = self.peek()
            if following.kind not in (",", _END):
                raise self.fail(following, "',' or end of string after '!" + key + "'")
            return Requirement(key, DOES_NOT_EXIST)
        key = self.key(token, "a label key")
        token = self.peek()
        if token.kind in (",", _END):
            return Requirement(key, EXISTS)
        self.take()
        if token.kind in ("=", "==", "!="):
            value = self.value(key) if self.peek().kind == _WORD else ""
            return Requirement(key, NOT_EQUALS if token.kind == "!=" else EQUALS, (value,))
        if token.kind in (">", "<"):
            bound = self.take()
            if bound.kind != _WORD or not _INTEGER.match(bound.text):
                raise self.fail(bound, f"an integer after '{token.text}'")
            return Requirement(key, GREATER_THAN if token.kind == ">" else LESS_THAN, (bound.text,))
        if token.kind == _WORD and token.text in (IN, NOT_IN):
            return Requirement(key, token.text, self.value_set(key, token.text))
        raise self.fail(token, "'=', '==', '!=', 'in', 'notin', ',' or end of string after a label key")

    def key(self, token: _Token, expected: str) -> str:
        if token.kind != _WORD:
            raise self.fail(token, expected)
        problems = qualified_name(token.text)
        if problems:
            raise BadRequest(
                f"invalid label selector {self.text!r}: key {token.text!r} at position {token.position}: "
                + "; ".join(problems)
            )
        return token.text

    def value(self, key: str) -> str:
        token = self.take()
        problems = label_value(token.text)
        if problems:
            raise BadRequest(
                f"invalid label selector {self.text!r}: value {token.text!r} of {key!r} at position "
                f"{token.position}: " + "; ".join(problems)
            )
        return token.text

    def value_set(self, key: str, operator: str) -> tuple[str, ...]:
        opening = self.take()
        if opening.kind != "(":
            raise self.fail(opening, f"'(' after '{operator}'")
        if self.peek().kind == ")":
            self.take()
            return ("",)  # as in Kubernetes: "()" is the set of the empty value
        values = set()
        while True:
            values.add(self.value(key) if self.peek().kind == _WORD else "")
            token = self.take()
            if token.kind == ")":
                return tuple(sorted(values))
            if token.kind != ",":
                raise self.fail(token, "',' or ')' in a list of values")


@functools.lru_cache(maxsize=512)
def _parse_label_selector(text: str) -> LabelSelector:
    # Cached: the same few selectors (a kubelet's, a controller's) come back on every list
    # and every reconnecting watch; a LabelSelector is immutable, so sharing one is safe.
    if not text.strip():
        return _EVERYTHING
    return LabelSelector(_LabelParser(text).parse())


# --- field selectors -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    operator: str  # EQUALS or NOT_EQUALS
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


class FieldSelector:
    """A conjunction of ``field=value`` / ``field!=value`` on a kind's selectable fields.

    Fields are strings the server extracts from each object (``metadata.name``,
    ``spec.nodeName``, ``status.phase``); one missing from the mapping counts as ``""``,
    so that ``spec.nodeName=`` finds the pods not yet scheduled.
    """

    __slots__ = ("_checks", "fields", "requirements")

    def __init__(self, requirements: Iterable[FieldRequirement] = ()) -> None:
        self.requirements: tuple[FieldRequirement, ...] = tuple(requirements)
        self.fields: frozenset[str] = frozenset(r.field for r in self.requirements)
        self._checks: tuple[tuple[str, str, bool], ...] = tuple(
            (r.field, r.value, r.operator == EQUALS) for r in self.requirements
        )

    @classmethod
    def everything(cls) -> FieldSelector:
        return _EVERY_FIELD

    @property
    def empty(self) -> bool:
        return not self.requirements

    def exact(self, field: str) -> str | None:
        """The value an ``=`` requirement pins ``field`` to, if any: with
        ``metadata.name=x`` a server reads one key instead of scanning a prefix."""
        for requirement in self.requirements:
            if requirement.field == field and requirement.operator == EQUALS:
                return requirement.value
        return None

    def matches(self, fields: Mapping[str, str]) -> bool:
        for field, value, equal in self._checks:  # noqa: SIM110 - as in LabelSelector.matches
            if (fields.get(field, "") == value) is not equal:
                return False
        return True

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash(self.requirements)

    @staticmethod
    def parse(text: str, allowed: Collection[str]) -> FieldSelector:
        """Parse ``?fieldSelector=`` syntax, accepting only the kind's ``allowed`` fields.

        As in Kubernetes, ``\\``, ``,`` and ``=`` in a value are escaped with a backslash, and
        empty terms (``a=b,``) are ignored. Unlike Kubernetes, spaces around a field name or
        a value are dropped: neither can meaningfully hold them.
        """
        requirements = []
        for term in _split_terms(text):
            term = term.strip()
            if not term:
                continue
            field, operator, value = _split_term(term, text)
            if field not in allowed:
                raise BadRequest(f"field label not supported: {field}")
            requirements.append(FieldRequirement(field, operator, value))
        return FieldSelector(requirements) if requirements else _EVERY_FIELD


_EVERY_FIELD: Final = FieldSelector()
_FIELD_OPERATORS: Final = ("!=", "==", "=")


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_terms(text: str) -> list[str]:
    terms, start, escaped = [], 0, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str, text: str) -> tuple[str, str, str]:
    escaped = False
    for i, char in enumerate(term):
        if escaped:
            escaped = False
            continue
        if char == "\\":
            escaped = True
            continue
        for operator in _FIELD_OPERATORS:
            if term.startswith(operator, i):
                field = term[:i].strip()
                if not field:
                    break
                value = _unescape(term[i + len(operator) :].strip(), text)
                return field, EQUALS if operator == "==" else operator, value
    raise BadRequest(f"invalid field selector {text!r}: can't understand {term!r}; expected field=value")


def _unescape(value: str, text: str) -> str:
    if "\\" not in value:
        return value
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise BadRequest(f"invalid field selector {text!r}: invalid escape sequence '\\{char}'")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    if escaped:
        raise BadRequest(f"invalid field selector {text!r}: a value ends with an unfinished escape '\\'")
    return "".join(out)
