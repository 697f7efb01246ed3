"""The three patch types of the Kubernetes API, as pure functions over decoded JSON.

``kubectl patch``, ``kubectl apply`` (client-side), ``kubectl scale`` and every controller
that touches an object partially speak one of these, so they follow Kubernetes' semantics
rather than anything of our own:

- JSON merge patch (RFC 7386): the simple one; lists are always replaced;
- JSON patch (RFC 6902): explicit operations, applied with the ``jsonpatch`` library;
- strategic merge patch: merge patch plus list merging by key and ``$``-directives, driven
  by ``Arr.merge_key`` / ``Arr.strategy`` of our schema, so that two controllers (or a user
  and an admission webhook) can each own some containers of the same pod template.

None of these functions mutate their inputs, and their results share no mutable value with
them: the API server goes on to stamp metadata into the result and must not write into a
cached copy of the stored object by accident.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Final

import jsonpatch
import orjson
from jsonpointer import JsonPointer, JsonPointerException

from shoal.api.errors import BadRequest, Invalid, RequestTooLarge, UnsupportedMediaType
from shoal.api.schema import Arr, Schema, child

Json = Any  # a decoded JSON value

MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"
PATCH_CONTENT_TYPES: Final = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

# Kubernetes refuses larger JSON patches (apiserver's maxJSONPatchOperations): a patch is
# applied under a lock on the object, and a huge one would hold it for too long.
MAX_JSON_PATCH_OPERATIONS: Final = 10_000

_PATCH: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ELEMENT_ORDER: Final = "$setElementOrder/"
_DELETE_FROM_PRIMITIVE_LIST: Final = "$deleteFromPrimitiveList/"


def apply_patch(original: Json, body: bytes, content_type: str, schema: Schema | None) -> Json:
    """Decode a PATCH request body and apply it to ``original`` by its content type.

    Merge and strategic patches must be JSON objects here (as Kubernetes requires), even
    though RFC 7386 allows any value: a patch that replaced a whole API object by a scalar
    could never validate, and the error would only be more confusing later.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == APPLY_PATCH:
        raise UnsupportedMediaType(
            f"server-side apply ({APPLY_PATCH}) is not supported yet: use client-side "
            f"`kubectl apply` (without --server-side), or one of the patch types {_listed()}"
        )
    if media not in PATCH_CONTENT_TYPES:
        shown = f'"{content_type}"' if content_type else "no content type"
        raise UnsupportedMediaType(f"the body of a patch must be one of {_listed()}, not {shown}")
    try:
        patch = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body of a {media} patch is not valid JSON: {exc}") from None
    if media == JSON_PATCH:
        return json_patch(original, patch)
    if not isinstance(patch, dict):
        raise BadRequest(f"the body of a {media} patch must be a JSON object, not {_json_type(patch)}")
    if media == MERGE_PATCH:
        return merge_patch(original, patch)
    return strategic_merge_patch(original, patch, schema)


def _listed() -> str:
    return ", ".join(PATCH_CONTENT_TYPES)


# --- RFC 7386 ------------------------------------------------------------------------------


def merge_patch(original: Json, patch: Json) -> Json:
    """RFC 7386: ``null`` deletes, objects merge recursively, anything else replaces."""
    if not isinstance(patch, dict):
        return _clone(patch)
    target = _clone(original) if isinstance(original, dict) else {}
    _merge_into(target, patch)
    return target


def _merge_into(target: dict[str, Json], patch: dict[str, Json]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            if not isinstance(current, dict):
                current = target[key] = {}
            _merge_into(current, value)
        else:
            target[key] = _clone(value)


def _clone(value: Json) -> Json:
    """A deep copy of decoded JSON; several times faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


# --- RFC 6902 ------------------------------------------------------------------------------

_REQUIRED_MEMBERS: Final = {
    "add": "value",
    "remove": "",
    "replace": "value",
    "move": "from",
    "copy": "from",
    "test": "value",
}


def json_patch(original: Json, operations: Json) -> Json:
    """RFC 6902, with Kubernetes' split of errors.

    A patch that is malformed as a document (not a list, an unknown ``op``, a missing
    member, a pointer that is not a JSON pointer) is a 400 BadRequest and is refused before
    anything is applied. A well-formed patch that does not fit the object (a path that
    does not exist, a failed ``test``) is a 422 Invalid, as Kubernetes answers it.
    Every message names the index of the operation, its ``op`` and its path.
    """
    if not isinstance(operations, list):
        raise BadRequest(f"a JSON patch must be a JSON array of operations, not {_json_type(operations)}")
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise RequestTooLarge(
            f"the allowed number of operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"but this one has {len(operations)}"
        )
    compiled = [_compile_operation(index, op) for index, op in enumerate(operations)]
    document = _clone(original)
    for index, op, patch in compiled:
        try:
            # atomic: a failed operation leaves the document as it was, so that the
            # message can describe the document the operation actually saw.
            document = patch.apply(document, in_place=True, atomic=True)
        except jsonpatch.JsonPatchTestFailed:
            raise Invalid(_test_failure(index, op, document)) from None
        except (jsonpatch.JsonPatchException, JsonPointerException, LookupError, TypeError) as exc:
            raise Invalid(_apply_failure(index, op, document, exc)) from None
    return document


def _compile_operation(index: int, op: Json) -> tuple[int, dict[str, Json], jsonpatch.JsonPatch]:
    where = f"JSON patch operation {index}"
    if not isinstance(op, dict):
        raise BadRequest(f"{where} must be a JSON object, not {_json_type(op)}")
    name = op.get("op")
    if not isinstance(name, str) or name not in _REQUIRED_MEMBERS:
        supported = ", ".join(_REQUIRED_MEMBERS)
        found = "no op" if name is None else f"op {_render(name)}"
        raise BadRequest(f"{where} has {found}: supported ops are {supported}")
    where = f"JSON patch operation {index} ({name})"
    for member in ("path", _REQUIRED_MEMBERS[name]):
        if member and member not in op:
            raise BadRequest(f'{where} has no "{member}" member')
    for member in ("path", "from"):
        if member in op:
            problem = _pointer_problem(op[member])
            if problem:
                raise BadRequest(f'{where} has an invalid "{member}" {_render(op[member])}: {problem}')
    try:
        return index, op, jsonpatch.JsonPatch([op])
    except (jsonpatch.JsonPatchException, JsonPointerException) as exc:  # pragma: no cover - checked above
        raise BadRequest(f"{where} is malformed: {exc}") from None


def _pointer_problem(pointer: Json) -> str:
    if not isinstance(pointer, str):
        return "a JSON pointer must be a string"
    if pointer and not pointer.startswith("/"):
        return 'a JSON pointer must be empty or start with "/"'
    position = pointer.find("~")
    while position >= 0:
        if pointer[position + 1 : position + 2] not in ("0", "1"):
            return '"~" must be followed by "0" or "1" in a JSON pointer'
        position = pointer.find("~", position + 2)
    return ""


def _test_failure(index: int, op: dict[str, Json], document: Json) -> str:
    path = op["path"]
    where = f"JSON patch operation {index} (test {_show(path)}) failed"
    found, actual = _resolve(document, path)
    if not found:
        return f"{where}: there is no value at {_show(path)}"
    return f"{where}: the value is {_render(actual)}, not {_render(op['value'])}"


def _apply_failure(index: int, op: dict[str, Json], document: Json, exc: Exception) -> str:
    name, path = op["op"], op["path"]
    where = f"JSON patch operation {index} ({name} {_show(path)}) could not be applied"
    if name in ("move", "copy") and not _resolve(document, op["from"])[0]:
        return f"{where}: there is no value at {_show(op['from'])} to {name}"
    if name in ("remove", "replace") and not _resolve(document, path)[0]:
        return f"{where}: there is no value at {_show(path)}"
    if path:
        parent, last = path.rsplit("/", 1)
        found, container = _resolve(document, parent)
        if not found:
            return f"{where}: {_show(parent)} does not exist"
        if not isinstance(container, dict | list):
            return f"{where}: {_show(parent)} is {_json_type(container)}, not an object or an array"
        if isinstance(container, list) and name != "move":
            return f"{where}: {last!r} is not a valid index into an array of {len(container)} items"
    detail = str(exc) or type(exc).__name__
    return f"{where}: {detail[:200]}"


def _show(pointer: str) -> str:
    return pointer if pointer else '"" (the whole object)'


def _resolve(document: Json, pointer: str) -> tuple[bool, Json]:
    try:
        return True, JsonPointer(pointer).resolve(document)
    except (JsonPointerException, LookupError, TypeError):
        return False, None


# --- strategic merge patch -----------------------------------------------------------------


def strategic_merge_patch(original: Json, patch: Json, schema: Schema | None) -> Json:
    """Kubernetes' strategic merge patch (k8s.io/apimachinery/pkg/util/strategicpatch).

    Where the schema knows nothing (``None``, ``Raw``, or a list without ``merge_key`` or
    ``merge`` strategy) the patch behaves as a JSON merge patch; directives are still
    obeyed and removed everywhere, so none is ever stored. Keys that start with ``$`` but
    are not directives (``$ref`` in an embedded JSON schema) are ordinary data.

    Orders follow Kubernetes: without ``$setElementOrder``, items named in a patch list
    come in the patch's order and the server's other items keep their places around them
    (a new item goes *before* the server-only items that follow the last matched one, so
    a patch of one new container to ``[a, b]`` gives ``[new, a, b]``); with it, its order
    wins. ``kubectl apply`` always sends ``$setElementOrder``, so apply keeps the file's order.
    """
    if not isinstance(patch, dict):
        raise BadRequest(f"a strategic merge patch must be a JSON object, not {_json_type(patch)}")
    target = _clone(original) if isinstance(original, dict) else {}
    merged = _merge_map(target, patch, schema, "")
    return {} if merged is None else merged


def _merge_map(
    target: dict[str, Json], patch: dict[str, Json], schema: Schema | None, path: str
) -> dict[str, Json] | None:
    """Merge ``patch`` into ``target`` (ours to change); ``None`` means "delete this map"."""
    if _PATCH in patch:
        directive = patch[_PATCH]
        if directive == "delete":
            return None
        if directive == "replace":
            return _merge_map({}, {k: v for k, v in patch.items() if k != _PATCH}, schema, path)
        if directive != "merge":
            raise BadRequest(
                f"{_at(path)}unknown {_PATCH} directive {_render(directive)}: "
                'expected "replace", "delete" or "merge"'
            )

    orders: dict[str, list[Json]] = {}
    for key, value in patch.items():
        if key == _RETAIN_KEYS:
            _retain_keys(target, patch, value, path)
        elif key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            name = key[len(_DELETE_FROM_PRIMITIVE_LIST) :]
            _delete_from_primitive_list(target, name, value, _join(path, name))
        elif key.startswith(_SET_ELEMENT_ORDER):
            name = key[len(_SET_ELEMENT_ORDER) :]
            if not isinstance(value, list):
                raise BadRequest(f"{_at(path)}{key} must be a list, not {_json_type(value)}")
            orders[name] = value

    for key, value in patch.items():
        if _is_directive(key):
            continue
        if value is None:
            target.pop(key, None)
            continue
        current = target.get(key)
        sub = child(schema, key)
        if isinstance(value, dict):
            merged = _merge_map(current if isinstance(current, dict) else {}, value, sub, _join(path, key))
            if merged is None:
                target.pop(key, None)
            else:
                target[key] = merged
        elif isinstance(value, list):
            base = current if isinstance(current, list) else []
            target[key] = _merge_list(base, value, sub, _join(path, key), orders.get(key))
        else:
            target[key] = value

    for key, order in orders.items():
        # An order for a list the patch leaves alone still reorders the live list.
        current = target.get(key)
        if key not in patch and isinstance(current, list):
            target[key] = _merge_list(current, [], child(schema, key), _join(path, key), order)
    return target


def _is_directive(key: str) -> bool:
    return key.startswith("$") and (
        key in (_PATCH, _RETAIN_KEYS)
        or key.startswith(_SET_ELEMENT_ORDER)
        or key.startswith(_DELETE_FROM_PRIMITIVE_LIST)
    )


def _retain_keys(target: dict[str, Json], patch: dict[str, Json], keep: Json, path: str) -> None:
    """``$retainKeys`` clears the fields of a union (``strategy``, a volume's source) that the
    new config no longer sets; a patch that also sets a field outside the list contradicts
    itself, and Kubernetes refuses it."""
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise BadRequest(f"{_at(path)}{_RETAIN_KEYS} must be a list of field names")
    kept = set(keep)
    for key, value in patch.items():
        if value is not None and not _is_directive(key) and key not in kept:
            raise BadRequest(f"{_at(path)}the patch sets {key!r}, which {_RETAIN_KEYS} {keep} does not list")
    for key in [k for k in target if k not in kept]:
        del target[key]


def _delete_from_primitive_list(target: dict[str, Json], name: str, values: Json, path: str) -> None:
    if not isinstance(values, list) or any(isinstance(v, dict | list) for v in values):
        raise BadRequest(f"{_DELETE_FROM_PRIMITIVE_LIST}{name} at {path} must be a list of scalar values")
    current = target.get(name)
    if isinstance(current, list):
        doomed = {_identity(v) for v in values}
        target[name] = [v for v in current if isinstance(v, dict | list) or _identity(v) not in doomed]


def _merge_list(
    base: list[Json], patch: list[Json], schema: Schema | None, path: str, order: list[Json] | None
) -> list[Json]:
    """Merge a patch list into ``base`` (ours to change) as the list's schema says."""
    arr = schema if isinstance(schema, Arr) else None
    items = arr.items if arr is not None else None
    if arr is not None and arr.merge_key:
        return _merge_keyed_list(base, patch, items, arr.merge_key, path, order)
    if arr is not None and "merge" in arr.strategy.split(","):
        return _merge_scalar_list(base, patch, path, order)
    # Replaced: only the patch's items remain, cleaned of directives and nulls.
    out = []
    for index, item in enumerate(patch):
        if isinstance(item, dict) and item.get(_PATCH) in ("replace", "merge", "delete") and len(item) == 1:
            continue
        fresh = _fresh(item, items, f"{path}[{index}]")
        if fresh is not _DELETED:
            out.append(fresh)
    return out


def _merge_keyed_list(
    base: list[Json],
    patch: list[Json],
    items: Schema | None,
    merge_key: str,
    path: str,
    order: list[Json] | None,
) -> list[Json]:
    def key_of(item: Json, where: str, what: str = "item") -> Hashable:
        if not isinstance(item, dict):
            raise BadRequest(
                f"{where}: each {what} of this list must be an object with the merge key {merge_key!r}, "
                f"not {_json_type(item)}"
            )
        if merge_key not in item:
            raise BadRequest(f"{where}: {what} {_render(item)} does not contain the merge key {merge_key!r}")
        return _identity(item[merge_key])

    replace_list = False
    doomed: set[Hashable] = set()
    updates: list[tuple[Hashable, dict[str, Json], str]] = []
    for index, item in enumerate(patch):
        where = f"{path}[{index}]"
        directive = item.get(_PATCH) if isinstance(item, dict) else None
        if directive not in (None, "delete", "replace", "merge"):
            raise BadRequest(
                f"{where}: unknown {_PATCH} directive {_render(directive)}: "
                'expected "replace", "delete" or "merge"'
            )
        if directive == "delete":
            doomed.add(key_of(item, where))
        elif directive == "replace" and len(item) == 1:
            replace_list = True
        elif directive == "merge" and len(item) == 1:
            continue
        else:
            updates.append((key_of(item, where), item, where))

    if replace_list:
        base = []
    elif doomed:
        base = [x for x in base if not (isinstance(x, dict) and _identity(x.get(merge_key)) in doomed)]

    # Items the server has without a usable merge key can never be matched: give each a
    # key of its own so that they keep their place as server-only items.
    keys: list[Hashable] = [
        _identity(x[merge_key]) if isinstance(x, dict) and merge_key in x else object() for x in base
    ]
    merged = list(base)
    position: dict[Hashable, int] = {}
    for i, k in enumerate(keys):
        position.setdefault(k, i)
    for k, item, where in updates:
        at = position.get(k)
        value = _merge_map(merged[at] if at is not None else {}, item, items, where)
        if value is None:  # pragma: no cover - a "delete" item never gets here
            continue
        if at is None:
            position[k] = len(merged)
            merged.append(value)
            keys.append(k)
        else:
            merged[at] = value

    if order is not None:
        wanted = [key_of(x, f"{path} ($setElementOrder)", "entry") for x in order]
    else:
        wanted = [k for k, _, _ in updates]
    return _arrange(merged, keys, len(base), wanted)


def _merge_scalar_list(
    base: list[Json], patch: list[Json], path: str, order: list[Json] | None
) -> list[Json]:
    """A set of scalars (``finalizers``): union, keeping the first of duplicates."""
    source = order if order is not None else patch
    for what, values in (("", patch), (f" ({_SET_ELEMENT_ORDER})", source)):
        for index, value in enumerate(values):
            if isinstance(value, dict | list):
                raise BadRequest(
                    f"{path}[{index}]{what}: expected a scalar in this list, found {_json_type(value)}"
                )
    merged: list[Json] = []
    keys: list[Hashable] = []
    seen: set[Hashable] = set()
    live = 0
    for index, value in enumerate([*base, *patch]):
        k = _identity(value)
        if k not in seen:
            seen.add(k)
            merged.append(value)
            keys.append(k)
            live += index < len(base)
    return _arrange(merged, keys, live, [_identity(v) for v in source])


def _arrange(merged: list[Json], keys: list[Hashable], live: int, wanted: list[Hashable]) -> list[Json]:
    """Kubernetes' normalizeElementOrder + mergeSortedSlice.

    Items named in ``wanted`` come in that order; the others (only the server has them,
    say a sidecar an admission webhook injected) keep their live order and are woven in
    before the first named item that follows them in the live list. ``merged[:live]`` are
    the live items, in live order; later ones are new.
    """
    rank: dict[Hashable, int] = {}
    for k in wanted:
        rank.setdefault(k, len(rank))
    if not rank:
        return merged
    named = sorted((i for i, k in enumerate(keys) if k in rank), key=lambda i: rank[keys[i]])
    others = [i for i, k in enumerate(keys) if k not in rank]
    out: list[Json] = []
    a = b = 0
    while a < len(others) and b < len(named):
        # A new named item has no live position to compare, and Kubernetes puts it first.
        if named[b] < live and others[a] < named[b]:
            out.append(merged[others[a]])
            a += 1
        else:
            out.append(merged[named[b]])
            b += 1
    out.extend(merged[i] for i in others[a:])
    out.extend(merged[i] for i in named[b:])
    return out


_DELETED: Final = object()


def _fresh(value: Json, schema: Schema | None, path: str) -> Json:
    """A patch value with nothing under it: merged into nothing, so directives and nulls go."""
    if isinstance(value, dict):
        merged = _merge_map({}, value, schema, path)
        return _DELETED if merged is None else merged
    if isinstance(value, list):
        return _merge_list([], value, schema, path, None)
    return value


def _identity(value: Json) -> Hashable:
    """A hashable stand-in with JSON equality (``true`` is not ``1``; ``1`` is ``1.0``)."""
    if isinstance(value, dict | list):
        return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    return (isinstance(value, bool), value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _at(path: str) -> str:
    return f"{path}: " if path else ""


def _json_type(value: Json) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _render(value: Json, limit: int = 100) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
