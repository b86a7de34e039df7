"""The cells `bulk select` writes: a record's current values as an input for `bulk apply`
holds them (and reads back to the same values), and `--set` templates with {field}
placeholders filled from the record."""

from __future__ import annotations

import json
import re
from typing import Any

from bulk.tallyfy import form_values
from bulk.tallyfy.compare import prerun_values
from bulk.tallyfy.shapes import fields_by_id
from bulk.tallyfy.targets import KEYED_FIELDS

KEYED_PREFIXES = tuple(f"{name}." for name in KEYED_FIELDS)
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def placeholders(template: str) -> tuple[str, ...]:
    """The fields a template names (ValueError for a lone brace)."""
    found = []
    for match in _PLACEHOLDER.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise ValueError(f"a lone {token!r}; write {token * 2} for the character itself")
        found.append(match.group(1).strip())
    return tuple(found)


def fill(template: str, record: dict[str, Any]) -> str:
    """The template with each {field} replaced by the record's value ({{ and }} escape)."""

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value = current_value(record, match.group(1).strip())
        if isinstance(value, list):
            return ";".join(cell_text(item) for item in value)
        return cell_text(value)

    return _PLACEHOLDER.sub(one, template)


def current_value(record: dict[str, Any], name: str) -> Any:
    """A field's current value as an input holds it (a form field's choice as its option
    text: what `bulk apply` turns back into the option object or array)."""
    if name.startswith(KEYED_PREFIXES):
        keyed, _, key = name.partition(".")
        value = (prerun_values(record.get(keyed)) or {}).get(key)
        return form_values.cell((fields_by_id(record) or {}).get(key), value)
    return record.get(name)


def cell_text(value: Any) -> str:
    """A value as a CSV cell `bulk apply` types back to the same value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
