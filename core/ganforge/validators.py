"""attrs validators that plugin configs share; their messages name the field and the value."""

from __future__ import annotations

from typing import Any

import attrs


def power_of_two(minimum: int = 1, maximum: int = 1 << 16) -> Any:
    """A validator for an ``int`` that is a power of two in ``[minimum, maximum]``."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
        if value < minimum or value > maximum or value & (value - 1):
            raise ValueError(
                f"'{attribute.name}' must be a power of two between {minimum} and {maximum} (got {value!r})"
            )

    return check
