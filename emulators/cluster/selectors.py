"""Label and field selectors, as the apiserver evaluates them on list and watch.

Called by the object store (``labelSelector``/``fieldSelector`` query parameters) and by the admission
chain (``namespaceSelector``/``objectSelector``, which are structured ``LabelSelector`` objects).
String selectors support ``=``, ``==``, ``!=``, ``in (…)``, ``notin (…)``, ``key`` and ``!key``, comma
meaning AND; a malformed selector or an unsupported field label is a 400, like the real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from emulators.cluster.errors import bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_BINARY_RE = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # in, notin, exists, !exists (= and == become in, != becomes notin)
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        if self.operator == "in":
            return self.key in labels and labels[self.key] in self.values
        # notin (and !=) also match objects that lack the label, as upstream does.
        return self.key not in labels or labels[self.key] not in self.values


def _split_top_level(selector: str) -> list[str]:
    """Split on commas that are not inside a ``( … )`` value set."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_label_selector(selector: str | None) -> list[Requirement]:
    """Parse a string label selector; raises a 400 ``ApiError`` on malformed input."""
    if selector is None or not selector.strip():
        return []
    requirements = []
    for part in _split_top_level(selector):
        if match := _SET_RE.match(part):
            values = [v.strip() for v in match["values"].split(",")]
            if any(not _VALUE_RE.match(v) for v in values):
                raise bad_request(f"unable to parse requirement: invalid label value in {part.strip()!r}")
            requirements.append(Requirement(match["key"], match["op"], frozenset(values)))
        elif match := _BINARY_RE.match(part):
            operator = "notin" if match["op"] == "!=" else "in"
            requirements.append(Requirement(match["key"], operator, frozenset({match["value"]})))
        elif match := _EXISTS_RE.match(part):
            requirements.append(Requirement(match["key"], "!exists" if match["neg"] else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: found {part.strip()!r}, expected a label selector")
    return requirements


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    present = labels or {}
    return all(r.matches(present) for r in requirements)


def match_label_selector_object(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Evaluate a structured ``metav1.LabelSelector``; ``None``/``{}`` selects everything."""
    if not selector:
        return True
    present = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if present.get(key) != value:
            return False
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators.get(expression.get("operator", ""))
        if operator is None:
            raise bad_request(f"{expression.get('operator')!r} is not a valid label selector operator")
        requirement = Requirement(expression["key"], operator, frozenset(expression.get("values") or []))
        if not requirement.matches(present):
            return False
    return True


def _dig(obj: Mapping[str, Any], dotted: str) -> Any:
    current: Any = obj
    for part in dotted.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def _as_field(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _pod_ips(pod: Mapping[str, Any]) -> list[str]:
    return [entry.get("ip", "") for entry in (_dig(pod, "status.podIPs") or [])]


_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        *_COMMON_FIELDS,
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    ),
    "events": (
        *_COMMON_FIELDS,
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "secrets": (*_COMMON_FIELDS, "type"),
    "namespaces": (*_COMMON_FIELDS, "status.phase"),
    "replicasets": (*_COMMON_FIELDS, "status.replicas"),
}


def _field_value(resource: str, obj: Mapping[str, Any], field: str) -> list[str]:
    if resource == "pods" and field == "status.podIPs":
        return _pod_ips(obj)
    if resource == "pods" and field == "spec.hostNetwork":
        return [_as_field(bool(_dig(obj, field)))]
    if resource == "events" and field == "source":
        return [_as_field(_dig(obj, "source.component"))]
    return [_as_field(_dig(obj, field))]


FieldPredicate = Callable[[Mapping[str, Any]], bool]


def parse_field_selector(resource: str, selector: str | None) -> FieldPredicate:
    """Compile a field selector for ``resource``; unsupported labels are a 400 like the real server."""
    if selector is None or not selector.strip():
        return lambda _obj: True
    supported = _FIELDS.get(resource, _COMMON_FIELDS)
    terms: list[tuple[str, bool, str]] = []
    for part in selector.split(","):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if match is None:
            raise bad_request(f"invalid selector: {selector!r}; can't understand {part!r}")
        field, operator, value = match.groups()
        if field not in supported:
            raise bad_request(f"field label not supported: {field}")
        terms.append((field, operator != "!=", value))

    def predicate(obj: Mapping[str, Any]) -> bool:
        return all((value in _field_value(resource, obj, field)) == equal for field, equal, value in terms)

    return predicate
