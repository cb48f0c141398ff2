"""A form's submitted `state.values` entries, as Slack sends them per element type."""

from __future__ import annotations

from typing import Any


def text(value: str | None) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def select(value: str) -> dict[str, Any]:
    return {"value": {"type": "static_select", "selected_option": {"value": value}}}


def day(value: str | None) -> dict[str, Any]:
    return {"value": {"type": "datepicker", "selected_date": value}}


def user(value: str | None) -> dict[str, Any]:
    return {"value": {"type": "users_select", "selected_user": value}}
