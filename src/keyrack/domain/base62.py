"""Base62 (``0-9A-Za-z``) encoding of non-negative integers at a fixed width."""

from __future__ import annotations

from typing import Final

ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX: Final = {c: i for i, c in enumerate(ALPHABET)}


def encode_fixed(number: int, width: int) -> str:
    """Encode ``number`` as exactly ``width`` base62 digits, most significant first.

    Raises:
        ValueError: The number is negative or does not fit in ``width`` digits.
    """
    if number < 0 or number >= 62**width:
        raise ValueError("number out of range for the width")
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        digits.append(ALPHABET[rem])
    return "".join(reversed(digits))


def decode(text: str) -> int:
    """Decode base62 digits to an integer.

    Raises:
        ValueError: A character is outside the alphabet.
    """
    number = 0
    for char in text:
        try:
            number = number * 62 + _INDEX[char]
        except KeyError:
            raise ValueError("not a base62 digit") from None
    return number
