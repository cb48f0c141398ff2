"""The one error type a user ever sees, and the wording it carries.

A message is crobot's own wording. When it quotes something a person or a file supplied
(a word they typed, a study code, an organisation's name), build it with `msg()`: the
values stay apart from the wording, so each surface can quote them its own way — Slack
escapes them (`handlers.blockkit.wording`), a terminal prints them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class Msg(str):
    """`template.format(*values)`, remembering which parts were `values`."""

    template: str
    values: tuple[object, ...]

    def __new__(cls, template: str, *values: object) -> Msg:
        # Stripped: a value may be empty ("Unknown flag `x`. {did}" with no suggestion).
        text = super().__new__(cls, (template.format(*values) if values else template).strip())
        text.template = template if values else template.replace("{", "{{").replace("}", "}}")
        text.values = values
        return text


def msg(template: str, *values: object) -> Msg:
    """`msg("There is no study `{}`.", code)`: `{}` marks where a supplied value goes."""
    return Msg(template, *values)


class UserError(Exception):
    """Bad input or a forbidden request. `message` says what is wrong, `hint` how to fix it.

    `field` names the input it is about (a service's own field name, e.g. "due"), when the
    service knows it, so that a form can show the message next to that field;
    `field_messages` holds one message per field (several when validation found several).
    """

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        field: str | None = None,
        field_messages: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field
        self.field_messages: dict[str, str] = dict(
            field_messages or ({field: message} if field else {})
        )

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class NotFound(UserError):
    """A named study, KPI, organisation or ID does not exist (or is not visible)."""


class Forbidden(UserError):
    """The actor may not do this."""


class NotRegistered(Forbidden):
    """Someone crobot does not know (no person for their (workspace, user)): the one answer
    they get, whatever they asked (`services.permissions.require_known`)."""


def from_validation(exc: ValidationError, hint: str | None = None) -> UserError:
    """Turn pydantic's report into one readable sentence naming each bad field.

    Pydantic's messages may quote the input (a validator's own words), so they are values.
    """
    fields: dict[str, str] = {}
    general: list[str] = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        text = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        if name:
            fields.setdefault(name, text)
        else:
            general.append(text)
    # Field names are crobot's own (the model's); what pydantic says about them is a value.
    parts = [msg(_code(name) + ": {}", text) for name, text in fields.items()]
    parts += [msg("{}", text) for text in general]
    message = msg("; ".join("{}" for _ in parts), *parts) if parts else msg("invalid input")
    first = next(iter(fields), None)
    return UserError(message, hint, field=first, field_messages=fields)


def _code(name: str) -> str:
    return "`" + name.replace("{", "{{").replace("}", "}}").replace("`", "'") + "`"


def validate(model: type[M], data: dict[str, object], hint: str | None = None) -> M:
    """Validate a service input; a failure becomes a UserError, before anything is written."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, hint) from None
