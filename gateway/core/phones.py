"""Pure: phone numbers read (phonenumbers), normalised to E.164 or a short code, checked as mobiles, masked."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers


@dataclass(frozen=True)
class Address:
    """A normalised sender or recipient."""

    value: str     # E.164 ("+265991234567") or short code digits ("12345")
    kind: str      # "e164" or "shortcode"
    medium: str    # "sms" or "whatsapp"
    # ISO region ("MW") of an E.164 number, read with it (country_of would parse it again); not part
    # of what the address is, so two equal numbers compare equal whatever was known of their region.
    region: str | None = field(default=None, compare=False)


class InvalidNumber(ValueError):
    """The input cannot be read as a phone number or short code."""


_MEDIUM_PREFIXES = (("whatsapp:", "whatsapp"), ("sms:", "sms"))
_SEPARATORS = re.compile(r"[\s\-().]")
# A leading 0 is a trunk prefix: "0991234" is a truncated local number, not a short code.
_SHORTCODE = re.compile(r"[1-9]\d{2,7}")


def normalise_number(raw: str, default_country: str = "MW") -> Address:
    """Parse a local, international or prefixed ("whatsapp:+265...") number into an Address."""
    text = (raw or "").strip() if isinstance(raw, str) else ""
    medium = "sms"
    for prefix, name in _MEDIUM_PREFIXES:
        if text.lower().startswith(prefix):
            text, medium = text[len(prefix):].strip(), name
            break
    if not text:
        raise InvalidNumber("empty value: not a phone number")
    compact = _SEPARATORS.sub("", text)
    # phonenumbers only understands "00" where the default region dials 00 abroad; make it explicit.
    if compact.startswith("00"):
        text = "+" + compact[2:]
    try:
        parsed = phonenumbers.parse(text, default_country.upper())
    except phonenumbers.NumberParseException:
        parsed = None
    # Valid, not merely possible: "+1 555 0100" has a plausible length but is no one's number.
    if parsed is not None and phonenumbers.is_valid_number(parsed):
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        region = phonenumbers.region_code_for_number(parsed)
        return Address(e164, "e164", medium, region if region and region != phonenumbers.UNKNOWN_REGION else None)
    if _SHORTCODE.fullmatch(compact):
        return Address(compact, "shortcode", medium)
    if not any(c.isdigit() for c in text):
        raise InvalidNumber(f"{raw!r} is not a phone number: it has no digits")
    raise InvalidNumber(f"{raw!r} is not a phone number: wrong length or no such number in that country")


def country_of(number: str) -> str | None:
    """ISO region code ("MW", "HN") of an E.164 number; None for short codes or unknown numbers."""
    if not number or not number.startswith("+"):
        return None
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    return region if region and region != phonenumbers.UNKNOWN_REGION else None


def mask_number(number: str) -> str:
    """Hide the subscriber part of a number for logs: "+265991234567" -> "+26599*****67"."""
    plus = "+" if number.startswith("+") else ""
    digits = number[len(plus):]
    # Keep at most country + operator prefix and the last two digits, but always hide at least four.
    tail = 2 if len(digits) >= 6 else 0
    head = max(0, min(5, len(digits) - tail - 4))
    hidden = len(digits) - head - tail
    return plus + digits[:head] + "*" * hidden + digits[len(digits) - tail:]


MOBILE_TYPES = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


class Refused(ValueError):
    """A one-off text that will not be sent; the message says why and never holds the number."""


def mobile_number(raw: str, default_country: str) -> str:
    """The E.164 form of a mobile number, or Refused (short code, premium, fixed line, not a number)."""
    try:
        address: Address = normalise_number(raw, default_country)
    except InvalidNumber:
        raise Refused("that is not a phone number") from None
    if address.kind != "e164":
        raise Refused("short codes can cost far more than a text, so test messages never go to one")
    kind = phonenumbers.number_type(phonenumbers.parse(address.value, None))
    if kind not in MOBILE_TYPES:
        raise Refused("only a mobile number can get a test message (not a premium, shared-cost or fixed line)")
    return address.value


def parse_numbers(value: str | None, default_country: str) -> list[str]:
    """A comma-separated list of mobile numbers (TEST_SEND_NUMBERS); ValueError names the bad entry."""
    out: list[str] = []
    for i, raw in enumerate((value or "").split(",")):
        if not raw.strip():
            continue
        try:
            number = mobile_number(raw, default_country)
        except Refused as exc:
            raise ValueError(f"entry {i + 1}: {exc}") from None
        if number not in out:
            out.append(number)
    return out
