"""A task's form field values: from what a person writes to what the API takes, and back.

A CSV cell (or a JSONL string) for a choice field holds the option's TEXT, as the person sees it:
* radio: the text, sent as the text;
* dropdown: the text, sent as the option object ``{"id", "text", "value"}``;
* multi-select: texts separated by ``;`` (or a JSON array of texts, for a text holding ``;``),
  sent as the field's whole option array, each with ``selected`` true or false.
The objects themselves (what a read shows, what a ledger keeps for `bulk undo`) are taken too.
Text, textarea, email and date values are sent as given. null empties a field.

Values are compared as what a person chose: the option's text (radio, dropdown), the set of
selected texts (multi-select), the instant (date), the text otherwise; empty is None.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bulk.engine.errors import BadValue
from bulk.tallyfy.values import show, split_text_list

MULTI_TYPES = frozenset({"multiselect", "multi_select", "checkbox", "checklist"})
#: Between the texts of a multi-select cell (README "Form fields").
MULTI_SEPARATOR = ";"


class UnknownOption(ValueError):
    """A choice the field does not offer: the row is invalid, nothing is sent."""


def _kind(field: dict[str, Any] | None) -> str | None:
    kind = field.get("field_type") if field else None
    return "multiselect" if kind in MULTI_TYPES else kind


def _options(field: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in field.get("options") or () if isinstance(o, dict)]


def _find(field: dict[str, Any], item: Any) -> dict[str, Any] | None:
    """The option `item` names: by its text (exact, then ignoring case and outer spaces), or,
    for an option object, by its id."""
    options = _options(field)
    if isinstance(item, dict):
        if item.get("id") is not None:
            return next((o for o in options if str(o.get("id")) == str(item["id"])), None)
        item = item.get("text")
    if not isinstance(item, str):
        return None
    exact = next((o for o in options if o.get("text") == item), None)
    if exact is not None:
        return exact
    folded = item.strip().casefold()
    return next((o for o in options if str(o.get("text", "")).strip().casefold() == folded),
                None)


def _unknown(field: dict[str, Any], item: Any) -> UnknownOption:
    offered = ", ".join(show(o.get("text")) for o in _options(field)) or "none"
    label = field.get("label") or field.get("id")
    return UnknownOption(f"{show(item)} is not an option of form field {label!r} "
                         f"({field.get('id')}); its options: {offered}; nothing sent")


def _multi_items(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            return split_text_list(value, allow_empty=True)
        except BadValue as exc:
            raise UnknownOption(str(exc)) from None
    if isinstance(value, list):
        # An option array as read: only the selected ones are chosen.
        return [item for item in value
                if not (isinstance(item, dict) and item.get("selected") is False)]
    return [value]


def to_send(field: dict[str, Any] | None, wanted: Any) -> Any:
    """What the PUT carries for `wanted` in this field; raises UnknownOption."""
    kind = _kind(field)
    if wanted is None or field is None or kind not in ("dropdown", "radio", "multiselect"):
        return wanted
    if kind == "multiselect":
        chosen: list[Any] = []
        for item in _multi_items(wanted):
            option = _find(field, item)
            if option is None:
                raise _unknown(field, item)
            chosen.append(option.get("id"))
        return [{**option, "selected": option.get("id") in chosen} for option in _options(field)]
    option = _find(field, wanted)
    if option is None:
        raise _unknown(field, wanted)
    if kind == "radio":
        return option.get("text")
    return {"id": option.get("id"), "text": option.get("text"), "value": option.get("value")}


def chosen(field: dict[str, Any] | None, value: Any) -> Any:
    """`value` as what a person chose, for comparing (see the module's docstring)."""
    if value is None or value == "" or value == []:
        return None
    kind = _kind(field)
    if field is not None and kind in ("dropdown", "radio"):
        option = _find(field, value)
        if option is not None:
            return option.get("text")
        return value.get("text") if isinstance(value, dict) else value
    if field is not None and kind == "multiselect":
        try:
            items = _multi_items(value)
        except UnknownOption:
            return value
        texts = set()
        for item in items:
            option = _find(field, item)
            texts.add(option.get("text") if option else
                      item.get("text") if isinstance(item, dict) else item)
        return frozenset(texts) or None
    if kind == "date" and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return _hashable(value)


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def same(field: dict[str, Any] | None, current: Any, wanted: Any) -> bool:
    return chosen(field, current) == chosen(field, wanted)


def cell(field: dict[str, Any] | None, value: Any) -> Any:
    """A field's value as a person writes it in a cell: option texts for choice fields."""
    kind = _kind(field)
    if value is None or field is None or kind not in ("dropdown", "radio", "multiselect"):
        return value
    if kind == "multiselect":
        texts = [option.get("text") for option in _options(field)
                 if option.get("id") in {o.get("id") for o in _selected(value)}]
        if any(MULTI_SEPARATOR in str(text) for text in texts):
            return json.dumps(texts, ensure_ascii=False)
        return f"{MULTI_SEPARATOR} ".join(str(text) for text in texts)
    option = _find(field, value)
    return option.get("text") if option else value


def _selected(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict) and item.get("selected")]


__all__ = ["MULTI_SEPARATOR", "UnknownOption", "cell", "chosen", "same", "to_send"]
