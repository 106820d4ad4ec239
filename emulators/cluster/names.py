"""Object name validation, with the real API server's rules and messages (apimachinery's validation).

`objects.check_create_identity` calls `check_name` for every create: Services need a DNS-1035 label,
Namespaces a DNS-1123 label, everything else here a DNS-1123 subdomain. A `generateName` create is
checked on the generated name, as the real server does after appending its random suffix.
"""

from __future__ import annotations

import re

from emulators.cluster.errors import ApiError, invalid
from emulators.cluster.resources import ResourceType

_SUBDOMAIN_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_1123_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_1035_FMT = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_RULES = {
    "subdomain": (
        _SUBDOMAIN_FMT,
        253,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
        "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        f"'{_SUBDOMAIN_FMT}')",
    ),
    "label": (
        _LABEL_1123_FMT,
        63,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
        f"and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
        f"'{_LABEL_1123_FMT}')",
    ),
    "dns1035": (
        _LABEL_1035_FMT,
        63,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
        "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
        f"validation is '{_LABEL_1035_FMT}')",
    ),
}


def _rule(rtype: ResourceType) -> str:
    if rtype.plural == "services":
        return "dns1035"
    if rtype.plural == "namespaces":
        return "label"
    return "subdomain"


def check_name(rtype: ResourceType, name: str) -> None:
    """Raise the real server's 422 for a name this kind may not have."""
    pattern, limit, explanation = _RULES[_rule(rtype)]
    detail = ""
    if len(name) > limit:
        detail = f'Invalid value: "{name}": must be no more than {limit} characters'
    elif re.fullmatch(pattern, name) is None:
        detail = f'Invalid value: "{name}": {explanation}'
    if detail:
        error: ApiError = invalid(
            rtype.kind, rtype.group, name, "metadata.name", cause_reason="FieldValueInvalid", detail=detail
        )
        raise error
