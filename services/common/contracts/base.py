"""The base of every wire contract: :class:`Message` and the annotated field types.

Money, prices and quantities are ``Decimal`` (JSON strings on the wire, so no
precision is lost between services). Every message carries ``schema_version``;
a consumer rejects (and dead-letters) a version it does not know.

Text a model or a provider wrote is :data:`Text`: NUL and lone surrogates, which Postgres
and strict JSON refuse, become U+FFFD on the way in, whether the message is built here or
decoded from the wire (agents are not trusted), so such text always reaches the books.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic.config import ExtraValues

from services.common.text import clean_text, readable_json
from services.common.tokens import valid_token

SCHEMA_VERSION: Literal[1] = 1


def _agent_id(value: str) -> str:
    if not valid_token(value):
        raise ValueError("agent_id must be lower-case letters, digits, '-' or '_'")
    return value


AgentId = Annotated[str, AfterValidator(_agent_id)]
# Free text from outside (model answers, provider errors): always storable, visibly cleaned.
Text = Annotated[str, AfterValidator(clean_text)]
Money = Decimal
Price = Decimal
Quantity = Decimal


class Message(BaseModel):
    """Base of every message: immutable, strict about unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def model_validate_json(
        cls,
        json_data: str | bytes | bytearray,
        *,
        strict: bool | None = None,
        extra: ExtraValues | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Also reads JSON a strict parser refuses only for its text (lone surrogate escapes
        as Python's ``json`` writes them, bytes that are not UTF-8): that text arrives with
        U+FFFD in place of what could not be read, instead of the whole message being lost."""
        options: dict[str, Any] = {
            "strict": strict,
            "extra": extra,
            "context": context,
            "by_alias": by_alias,
            "by_name": by_name,
        }
        try:
            return super().model_validate_json(json_data, **options)
        except ValidationError as exc:
            if not any(error["type"] == "json_invalid" for error in exc.errors()):
                raise
        # Only a message that failed to parse pays for the second pass.
        return super().model_validate_json(readable_json(json_data), **options)
