"""How objects are printed: kubectl-like tables (rich), YAML, JSON and ``kind/name`` lines."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shoal.api import Column, Kind, Object

FORMATS = ("wide", "yaml", "json", "name")
_COLUMN_GAP = 3  # spaces between table columns, as kubectl prints them


# -- names ---------------------------------------------------------------------------------


def kind_word(kind: Kind) -> str:
    """``deployment.apps`` or ``configmap``: how kubectl names a kind in its messages."""
    word = kind.kind.lower()
    return f"{word}.{kind.group}" if kind.group else word


def object_name(kind: Kind, obj: Object) -> str:
    """``deployment.apps/web``: the ``-o name`` form."""
    return f"{kind_word(kind)}/{obj['metadata']['name']}"


def object_ref(kind: Kind, name: str) -> str:
    """``deployment.apps "web"``: how a message names one object."""
    return f'{kind_word(kind)} "{name}"'


# -- messages ------------------------------------------------------------------------------


def one_line(message: str) -> str:
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def echo_error(message: str) -> None:
    click.echo(f"error: {one_line(message)}", err=True)


def echo(text: str = "") -> None:
    click.echo(text)


# -- tables --------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """One table cell as kubectl prints it."""
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(cell_text(v) for v in value) or "<none>"
    return str(value)


def _cell(column: Column, obj: Object) -> str:
    try:
        return cell_text(column.value(obj))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return "<unknown>"


class TablePrinter:
    """Rows of one kind, with the kind's declared columns (the same ones the server sends
    kubectl). Remembers the column widths, so that the rows ``get -w`` prints later line up
    with the table printed first."""

    def __init__(
        self, kind: Kind, *, wide: bool = False, namespace_column: bool = False, qualify_names: bool = False
    ) -> None:
        self.kind = kind
        self.columns = [c for c in kind.columns if wide or c.priority == 0]
        if not self.columns:
            self.columns = [Column("Name", lambda o: o["metadata"]["name"], format="name")]
        self.namespace_column = namespace_column and kind.namespaced
        self.qualify_names = qualify_names
        names = [i for i, c in enumerate(self.columns) if c.format == "name" or c.name.lower() == "name"]
        self._name_index = names[0] if names else -1
        self.headers = [c.name.upper() for c in self.columns]
        if self.namespace_column:
            self.headers.insert(0, "NAMESPACE")
        self.widths = [len(h) for h in self.headers]

    def cells(self, obj: Object) -> list[str]:
        cells = [_cell(c, obj) for c in self.columns]
        if self.qualify_names and self._name_index >= 0:
            cells[self._name_index] = object_name(self.kind, obj)
        if self.namespace_column:
            cells.insert(0, str(obj.get("metadata", {}).get("namespace") or ""))
        return cells

    def render(self, objects: Iterable[Object], *, header: bool = True) -> str:
        rows = [self.cells(o) for o in objects]
        for row in rows:
            self.widths = [max(w, len(c)) for w, c in zip(self.widths, row, strict=True)]
        table = Table(
            box=None,
            show_header=header,
            show_edge=False,
            pad_edge=False,
            header_style=None,
            padding=(0, _COLUMN_GAP, 0, 0),
            expand=False,
        )
        for name, width in zip(self.headers, self.widths, strict=True):
            table.add_column(Text(name), min_width=width, no_wrap=True, overflow="ignore")
        for row in rows:
            table.add_row(*(Text(c) for c in row))
        return render_rich(table, sum(self.widths) + _COLUMN_GAP * len(self.widths) + 1)


def render_rich(renderable: Any, width: int) -> str:
    """Plain text of a rich renderable: no colours, no wrapping, no trailing spaces."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=max(width, 20),
        color_system=None,
        force_terminal=False,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
    )
    console.print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def no_resources(namespace: str | None) -> str:
    """kubectl's message for an empty result; ``namespace`` None for all namespaces."""
    return f"No resources found in {namespace} namespace." if namespace else "No resources found"


# -- documents -----------------------------------------------------------------------------


def document(kind: Kind, obj: Object) -> Object:
    """The object as a complete document: apiVersion and kind first (list items may lack them)."""
    return {
        "apiVersion": obj.get("apiVersion") or kind.api_version,
        "kind": obj.get("kind") or kind.kind,
        **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")},
    }


def list_document(items: Sequence[Object]) -> Object:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": list(items)}


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (scripts, config files in ConfigMaps)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(doc: Any) -> str:
    text: str = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text.rstrip("\n")


def to_json(doc: Any) -> str:
    return json.dumps(doc, indent=4, ensure_ascii=False)


def render_documents(docs: Sequence[Object], fmt: str, *, single: bool) -> str:
    """``-o yaml|json``: the object itself when one was asked for by name, else a List."""
    doc = docs[0] if single and len(docs) == 1 else list_document(docs)
    return to_yaml(doc) if fmt == "yaml" else to_json(doc)
