"""Phone numbers as the booking form takes them (bot.phone through the form's validation)."""

from __future__ import annotations

import pytest

from bot.phone import InvalidPhone, display_phone, normalise_phone


@pytest.mark.parametrize("raw, e164", [
    ("(212) 555-0142", "+12125550142"),
    ("212 555 0142", "+12125550142"),
    ("212.555.0142", "+12125550142"),
    ("+1 212-555-0142", "+12125550142"),
    ("1 (212) 555 0142", "+12125550142"),
    ("+44 20 7946 0958", "+442079460958"),
    ("  2125550142  ", "+12125550142"),
])
def test_valid_numbers_are_normalised_to_e164(raw, e164):
    assert normalise_phone(raw, "US") == e164


@pytest.mark.parametrize("raw", ["", "   ", "12345", "call me", "555-0142", "+1 000 000 0000", "2" * 41,
                                 "'); DROP TABLE patients;--"])
def test_invalid_numbers_are_refused_with_a_reason(raw):
    with pytest.raises(InvalidPhone) as info:
        normalise_phone(raw, "US")
    assert str(info.value)


def test_display_is_national():
    assert display_phone("+12125550142") == "(212) 555-0142"
