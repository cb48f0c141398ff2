"""The one error type a user ever sees."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class UserError(Exception):
    """Bad input or a forbidden request. `message` says what is wrong, `hint` how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class NotFound(UserError):
    """A named study, KPI, organisation or ID does not exist (or is not visible)."""


class Forbidden(UserError):
    """The actor may not do this."""


def from_validation(exc: ValidationError, hint: str | None = None) -> UserError:
    """Turn pydantic's report into one readable sentence naming each bad field."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        msg = str(err.get("msg", "is invalid"))
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{field}: {msg}" if field else msg)
    return UserError("; ".join(parts) or "invalid input", hint)


def validate(model: type[M], data: dict[str, object], hint: str | None = None) -> M:
    """Validate a service input; a failure becomes a UserError, before anything is written."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, hint) from None
