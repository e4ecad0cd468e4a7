"""The JSON Schema `format` assertions kubeconform makes, for validate-manifests to make them too.

kubeconform compiles a schema without `$schema` (CRD schemas, ours) as draft 4, and its
validator (santhosh-tekuri/jsonschema v6) asserts formats for drafts before 2019-09; the
Kubernetes schemas declare draft 2020-12, where a format is only an annotation. The checks
follow that validator's format.go for the formats Kubernetes CRDs carry (date-time, date,
time, ipv4, ipv6); any other format is not checked (int32, int64 and byte are not JSON Schema
formats; hostname, email, uri and duration are rare in CRDs and not checked yet).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Callable
from typing import Any

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[zZ]|([+-])(\d{2}):(\d{2}))")
_DECIMAL = re.compile(r"[+-]?\d+")


def asserts_formats(schema: dict[str, Any]) -> bool:
    """Whether kubeconform asserts this schema's formats: drafts before 2019-09 do."""
    draft = str(schema.get("$schema") or "")
    return "2019-09" not in draft and "2020-12" not in draft


def is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        datetime.date(int(text[:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


def is_time(text: str) -> bool:
    """RFC 3339 full-time; a leap second only at 23:59 UTC."""
    match = _TIME.fullmatch(text)
    if match is None:
        return False
    hour, minute, second = (int(match[n]) for n in (1, 2, 3))
    if hour > 23 or minute > 59 or second > 60:
        return False
    if match[4]:
        offset_hour, offset_minute = int(match[5]), int(match[6])
        if offset_hour > 23 or offset_minute > 59:
            return False
        sign = -1 if match[4] == "+" else 1
        total = (hour * 60 + minute + sign * (offset_hour * 60 + offset_minute)) % (24 * 60)
        hour, minute = divmod(total, 60)
    return second < 60 or (hour, minute) == (23, 59)


def is_date_time(text: str) -> bool:
    return len(text) >= 20 and text[10] in "tT" and is_date(text[:10]) and is_time(text[11:])


def is_ipv4(text: str) -> bool:
    groups = text.split(".")
    return len(groups) == 4 and all(
        _DECIMAL.fullmatch(group) and not (len(group) > 1 and group[0] == "0")
        and 0 <= int(group) <= 255 for group in groups)


def is_ipv6(text: str) -> bool:
    if ":" not in text or "%" in text:  # a zone id is not part of an address
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _strings_only(check: Callable[[str], bool]) -> Callable[[Any], bool]:
    return lambda value: not isinstance(value, str) or check(value)


FORMAT_CHECKS: dict[str, Callable[[Any], bool]] = {
    "date-time": _strings_only(is_date_time), "date": _strings_only(is_date),
    "time": _strings_only(is_time), "ipv4": _strings_only(is_ipv4),
    "ipv6": _strings_only(is_ipv6),
}
