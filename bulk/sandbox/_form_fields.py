"""A task's form fields, as production keeps and shows them (Tallyfy's update-task page, its
MCP server's task tools).

* A task read shows no field list; ``?with=form_fields`` adds one entry per field of the step,
  ``{id, field_type, label, options, ...}`` with the field's answer. Tallyfy's MCP server,
  traced against production, shows the include wrapped (``{"data": [...]}``) with the answer in
  ``field_value``; the documentation's sample shows a bare array with ``value``. The sandbox
  answers the first by default (``form_fields_shape="data"``) and the second on request
  (``"bare"``).
* ``taskdata`` holds only answered fields: an empty field has no key.
* Values by type: text/textarea/email a string, date an ISO string, radio the option's text,
  dropdown the option object ``{"id", "text", "value"}``, multi-select the whole option array,
  each with ``selected``. null (or "", or no option selected) empties the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

#: How `?with=form_fields` is shaped: "data" (MCP server, traced against production) or
#: "bare" (the documentation's sample).
FORM_FIELD_SHAPES = ("data", "bare")
#: Field types a generated task gets, chosen from the field id (no random draw: adding them
#: moved no other generated value).
_TYPES = ("text", "dropdown", "multiselect", "radio", "date", "textarea")
_OPTIONS = {
    "dropdown": ("Low", "Medium", "High", "Urgent"),
    "multiselect": ("Email", "Phone", "Letter", "Portal"),
    "radio": ("Yes", "No", "Not applicable"),
}
_LABELS = {"text": "Reference", "dropdown": "Priority", "multiselect": "Channels",
           "radio": "Approved", "date": "Due on", "textarea": "Notes"}
CHOICE_TYPES = ("dropdown", "multiselect", "radio")


class FieldValueError(ValueError):
    """A value the field cannot hold (the 422's message)."""


def generated_field(field_id: str, field_type: str | None = None) -> dict[str, Any]:
    """The definition of one form field: its type from its id unless given."""
    kind = field_type or _TYPES[int(field_id[:8], 16) % len(_TYPES)]
    field: dict[str, Any] = {"id": field_id, "field_type": kind, "label": _LABELS.get(kind, kind)}
    texts = _OPTIONS.get(kind, ())
    field["options"] = [{"id": n, "text": text, "value": None} for n, text in
                        enumerate(texts, start=1)]
    return field


def include(fields: list[dict[str, Any]], taskdata: dict[str, Any], shape: str) -> Any:
    """The `form_fields` of a task read with ``?with=form_fields``."""
    key = "field_value" if shape == "data" else "value"
    entries = [{**field, "required": False, key: taskdata.get(field["id"])}
               for field in fields]
    return {"data": entries} if shape == "data" else entries


def stored_value(field: dict[str, Any], value: Any) -> Any:
    """What the field holds after a PUT sends ``value`` (None: unanswered); raises
    FieldValueError for a value of the wrong shape for its type."""
    kind = field.get("field_type")
    if value is None or value == "" or value == []:
        return None
    options = field.get("options") or []
    if kind == "dropdown":
        chosen = _option(options, value)
        if not isinstance(value, dict) or chosen is None:
            raise FieldValueError("The dropdown value must be one of its option objects.")
        return dict(chosen)
    if kind == "radio":
        if not isinstance(value, str) or not any(o["text"] == value for o in options):
            raise FieldValueError("The radio value must be the text of one of its options.")
        return value
    if kind == "multiselect":
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise FieldValueError("The multi-select value must be an array of its options.")
        picked = {_option(options, item)["id"] for item in value  # type: ignore[index]
                  if item.get("selected") and _option(options, item) is not None}
        if any(item.get("selected") and _option(options, item) is None for item in value):
            raise FieldValueError("The multi-select value holds an option it does not have.")
        if not picked:
            return None
        return [{**option, "selected": option["id"] in picked} for option in options]
    if kind == "date":
        if not isinstance(value, str):
            raise FieldValueError("The date value must be a date string.")
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FieldValueError("The date value is not a valid date.") from None
        return value
    if not isinstance(value, str):
        raise FieldValueError(f"The {kind} value must be a string.")
    return value


def _option(options: list[dict[str, Any]], value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return next((o for o in options if o["id"] == value.get("id")), None)
