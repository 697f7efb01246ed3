"""Docker Swarm's placement syntax: constraints and placement preferences.

A constraint is ``ATTRIBUTE==VALUE`` or ``ATTRIBUTE!=VALUE`` where ATTRIBUTE is one of
``node.labels.KEY``, ``node.hostname``, ``node.role`` (manager or worker), ``node.id``,
``node.platform.os`` and ``node.platform.arch``. Values compare case-insensitively, as Swarm
does (swarmkit ``manager/constraint``). A preference is ``spread=node.labels.KEY``.

Parsing is separate from matching so that a malformed expression is reported once, naming
the expression, instead of showing up as "no node matched".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# The attributes a constraint may name, mapped to the node fact they read.
ATTRIBUTES: Final = {
    "node.hostname": "hostname",
    "node.role": "role",
    "node.id": "id",
    "node.platform.os": "os",
    "node.platform.arch": "arch",
}
LABEL_PREFIX: Final = "node.labels."
ROLES: Final = ("manager", "worker")

# Swarm's own patterns: a label key is alphanumeric with - _ . ; a value may hold a little more.
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9\-_./]*$")
_VALUE = re.compile(r"^[A-Za-z0-9:\-_\s.*()?+\[\]\\^$|/]+$")
_OPERATORS: Final = ("==", "!=")


class SwarmSyntaxError(ValueError):
    """A constraint or preference that cannot be parsed; names the expression."""

    def __init__(self, expression: str, why: str) -> None:
        super().__init__(f"{expression!r}: {why}")
        self.expression = expression
        self.why = why


@dataclass(frozen=True, slots=True)
class Constraint:
    """One parsed constraint. ``attribute`` is a key of ATTRIBUTES' values or "label"."""

    text: str
    attribute: str
    label: str  # the label key when attribute == "label", else ""
    equal: bool
    value: str  # lower-cased: matching is case-insensitive

    def matches(self, actual: str | None) -> bool:
        """Whether a node whose attribute is ``actual`` (None: label absent) satisfies it.
        A missing label never equals a value and always differs from one, as in Swarm."""
        if actual is None:
            return not self.equal
        return (actual.lower() == self.value) == self.equal


def parse_constraint(text: str) -> Constraint:
    for operator in _OPERATORS:
        if operator in text:
            left, _, right = text.partition(operator)
            break
    else:
        raise SwarmSyntaxError(text, "expected ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE")
    name, value = left.strip(), right.strip()
    if not value or "==" in value or "!=" in value or not _VALUE.match(value):
        raise SwarmSyntaxError(text, f"invalid value {value!r}")
    if name.startswith(LABEL_PREFIX):
        label = name[len(LABEL_PREFIX) :]
        if not _KEY.match(label):
            raise SwarmSyntaxError(text, f"invalid label key {label!r}")
        return Constraint(text, "label", label, operator == "==", value.lower())
    attribute = ATTRIBUTES.get(name)
    if attribute is None:
        known = ", ".join([*ATTRIBUTES, LABEL_PREFIX + "KEY"])
        raise SwarmSyntaxError(text, f"unknown attribute {name!r} (known: {known})")
    if attribute == "role" and value.lower() not in ROLES:
        raise SwarmSyntaxError(text, f"node.role must be manager or worker, not {value!r}")
    return Constraint(text, attribute, "", operator == "==", value.lower())


def parse_constraints(texts: list[str]) -> tuple[Constraint, ...]:
    return tuple(parse_constraint(text) for text in texts)


def parse_preferences(texts: list[str]) -> tuple[str, ...]:
    """``spread=node.labels.KEY`` expressions → the label keys, most significant first."""
    labels: list[str] = []
    for text in texts:
        strategy, _, target = text.partition("=")
        if strategy.strip() != "spread":
            raise SwarmSyntaxError(text, "expected spread=node.labels.KEY (spread is the only strategy)")
        target = target.strip()
        if not target.startswith(LABEL_PREFIX) or not _KEY.match(target[len(LABEL_PREFIX) :]):
            raise SwarmSyntaxError(text, "expected spread=node.labels.KEY")
        labels.append(target[len(LABEL_PREFIX) :])
    return tuple(labels)
