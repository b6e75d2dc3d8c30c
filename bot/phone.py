"""Phone numbers: validated and stored in E.164 (``+12125550142``), via ``phonenumbers``."""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    pass


def normalise_phone(raw: str, region: str = "US") -> str:
    """E.164 form of ``raw``; raises InvalidPhone with a human reason."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhone("no phone number given")
    if len(raw) > 40:
        raise InvalidPhone("that is too long to be a phone number")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(f"{raw.strip()!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"{raw.strip()!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_e164(value: object) -> bool:
    """Whether ``value`` is a valid number written exactly in E.164 (``+12125550142``): what an
    SMS goes to. National forms, spaces and impossible numbers are not."""
    if not isinstance(value, str) or not value.startswith("+"):
        return False
    try:
        return normalise_phone(value) == value
    except InvalidPhone:
        return False


def display_phone(e164: str) -> str:
    """A readable national form for messages (``(212) 555-0142``)."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return e164
