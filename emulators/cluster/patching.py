"""The three PATCH flavours the apiserver accepts: JSON patch, JSON merge patch and strategic merge.

Called by the object store's ``patch``. Strategic merge follows the apimachinery semantics for the
subset the project's writers send: lists merge by the per-field merge key from ``resources.py`` (other
lists are atomic), ``null`` deletes a key, and the directives ``$patch: replace|delete|merge``,
``$retainKeys``, ``$setElementOrder/<list>`` and ``$deleteFromPrimitiveList/<list>`` are honoured.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from emulators.cluster.errors import ApiError, bad_request, unprocessable, unsupported_media_type
from emulators.cluster.resources import ListStrategy, ResourceType

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

_DELETE = object()  # sentinel: a "$patch: delete" map removes itself from its parent


def apply_patch(rtype: ResourceType, original: dict[str, Any], patch: Any, patch_type: str) -> dict[str, Any]:
    """Return a new object: ``original`` with ``patch`` applied; raises ``ApiError`` (400/415/422)."""
    media_type = patch_type.split(";", 1)[0].strip().lower()
    if media_type not in rtype.patch_types or media_type == "application/apply-patch+yaml":
        # Server-side apply is not emulated; refusing it beats silently merging a YAML body wrongly.
        raise unsupported_media_type(rtype.patch_types)
    if media_type == JSON_PATCH:
        return json_patch(original, patch)
    if not isinstance(patch, dict):
        raise bad_request(f"the body of a {media_type} request must be a JSON object")
    if media_type == MERGE_PATCH:
        result = merge_patch(original, patch)
    else:
        result = strategic_merge_patch(original, patch, rtype.merge_keys)
    if not isinstance(result, dict):
        raise bad_request("the patch removed the whole object")
    return result


def json_patch(original: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902 via ``jsonpatch``; an operation that cannot apply is a 422 like the real server."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a JSON array of operations")
    try:
        result = jsonpatch.JsonPatch(operations).apply(original, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise unprocessable(f"the server rejected our request due to an error in our request: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise unprocessable(f"the server rejected our request due to an error in our request: {exc}") from exc
    except (TypeError, KeyError) as exc:
        raise bad_request(f"invalid json patch: {exc}") from exc
    if not isinstance(result, dict):
        raise unprocessable("the json patch replaced the object with a non-object")
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` removes, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(original: Any, patch: dict[str, Any], merge_keys: dict[str, ListStrategy]) -> Any:
    result = _merge_map(original, patch, "", merge_keys)
    return None if result is _DELETE else result


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _merge_map(original: Any, patch: dict[str, Any], path: str, merge_keys: dict[str, ListStrategy]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    body = {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "replace":
        return _strip_directives(body)
    if directive not in (None, "merge"):
        raise bad_request(f"unknown patch directive {directive!r} at {path or '<root>'}")
    result: dict[str, Any] = copy.deepcopy(original) if isinstance(original, dict) else {}
    retain_keys = body.pop("$retainKeys", None)
    orders: dict[str, list[Any]] = {}
    primitive_deletes: dict[str, list[Any]] = {}
    for key, value in body.items():
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            primitive_deletes[key.split("/", 1)[1]] = value
            continue
        child_path = _join(path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _merge_map(result.get(key), value, child_path, merge_keys)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, child_path, merge_keys)
        else:
            result[key] = value
    for key, values in primitive_deletes.items():
        if isinstance(result.get(key), list):
            result[key] = [item for item in result[key] if item not in values]
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            strategy = merge_keys.get(_join(path, key))
            result[key] = _apply_order(result[key], order, strategy[1] if strategy else None)
    if retain_keys is not None:
        if not isinstance(retain_keys, list):
            raise bad_request(f"$retainKeys at {path or '<root>'} must be a list of field names")
        result = {k: v for k, v in result.items() if k in retain_keys}
    return result


def _merge_list(original: Any, patch: list[Any], path: str, merge_keys: dict[str, ListStrategy]) -> list[Any]:
    strategy = merge_keys.get(path)
    replace_all = any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch)
    items = [item for item in patch if not (isinstance(item, dict) and set(item) == {"$patch"})]
    if strategy is None or replace_all or not isinstance(original, list):
        # Atomic lists, an explicit replace, or nothing to merge into: the patch list wins.
        return [_strip_directives(item) for item in items if not _is_delete(item)]
    _, key = strategy
    result = copy.deepcopy(original)
    if key is None:
        for item in items:
            if item not in result:
                result.append(item)
        return result
    for item in items:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map in list at {path} is missing its merge key {key!r}: {item!r}")
        index = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if _is_delete(item):
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(_strip_directives(item))
        else:
            result[index] = _merge_map(result[index], item, path, merge_keys)
    return result


def _is_delete(item: Any) -> bool:
    return isinstance(item, dict) and item.get("$patch") == "delete"


def _apply_order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Sort ``items`` by ``$setElementOrder``; elements it does not name keep their place at the end."""

    def identity(item: Any) -> Any:
        if key is not None and isinstance(item, dict):
            return item.get(key)
        return item

    wanted = [identity(entry) if isinstance(entry, dict) else entry for entry in order]
    ranked = sorted(
        enumerate(items),
        key=lambda pair: (wanted.index(identity(pair[1])) if identity(pair[1]) in wanted else len(wanted), pair[0]),
    )
    return [item for _, item in ranked]


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "ApiError",
    "apply_patch",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]
