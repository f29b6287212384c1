"""Pure tests of gateway.sms: segment counting, GSM-7 folding and number normalisation."""
from __future__ import annotations

import pytest

from gateway.core.segments import SegmentInfo, count_segments, gsm7_replace, is_gsm7
from gateway.core.phones import Address, InvalidNumber, country_of, mask_number, normalise_number

EMOJI = "\U0001F600"  # outside the BMP: two UTF-16 units


# --- segment counting -------------------------------------------------------------------------

@pytest.mark.parametrize("length, segments", [
    (1, 1), (160, 1), (161, 2), (153 * 2, 2), (153 * 2 + 1, 3), (153 * 3, 3), (153 * 3 + 1, 4),
])
def test_gsm7_segment_boundaries(length: int, segments: int) -> None:
    info = count_segments("a" * length)
    assert (info.encoding, info.segments, info.units, info.characters) == ("GSM-7", segments, length, length)


def test_empty_text_is_zero_segments() -> None:
    assert count_segments("") == SegmentInfo("GSM-7", 0, 0, 0, ())


@pytest.mark.parametrize("char", list("^{}\\[~]|€\f"))
def test_extension_characters_cost_two_septets(char: str) -> None:
    info = count_segments(char)
    assert (info.encoding, info.units, info.characters) == ("GSM-7", 2, 1)


def test_extension_character_pushes_over_single_limit() -> None:
    assert count_segments("a" * 158 + "€").segments == 1   # exactly 160 septets
    info = count_segments("a" * 159 + "€")
    assert (info.units, info.segments) == (161, 2)


def test_escape_pair_is_not_split_across_segments() -> None:
    # 152 + 2 would straddle the 153 boundary, so the € moves to segment 2: 152 | 2+150 = 152 | 152.
    text = "a" * 152 + "€" + "a" * 150
    info = count_segments(text)
    assert info.units == 304              # plain division would say ceil(304/153) = 2 ...
    assert info.segments == 2
    text = "a" * 152 + "€" + "a" * 152    # ... 152 | 154 does not fit: the greedy packing needs 3
    assert count_segments(text).units == 306
    assert count_segments(text).segments == 3


def test_gsm7_basic_table_is_one_septet_each() -> None:
    text = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà\n\r "
    info = count_segments(text)
    assert info.encoding == "GSM-7"
    assert info.units == len(text)
    assert is_gsm7(text)


@pytest.mark.parametrize("char", ["ą", "中"])
@pytest.mark.parametrize("length, segments", [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_segment_boundaries(char: str, length: int, segments: int) -> None:
    info = count_segments(char * length)
    assert (info.encoding, info.segments, info.units) == ("UCS-2", segments, length)
    assert info.ucs2_chars == (char,)


def test_one_non_gsm_character_switches_the_whole_text() -> None:
    info = count_segments("a" * 69 + "ą")
    assert (info.encoding, info.units, info.segments) == ("UCS-2", 70, 1)
    assert count_segments("a" * 70 + "ą").segments == 2
    # In UCS-2 the extension characters are plain 16-bit units, not escape pairs.
    assert count_segments("€ą").units == 2


def test_emoji_counts_two_units() -> None:
    info = count_segments(EMOJI * 35)
    assert (info.encoding, info.units, info.characters, info.segments) == ("UCS-2", 70, 35, 1)
    assert count_segments(EMOJI * 35 + "a").segments == 2


def test_surrogate_pair_is_not_split_across_segments() -> None:
    # 66 units then an emoji: the pair cannot straddle 67, so segment 1 holds 66 units.
    text = "ą" * 66 + EMOJI + "ą" * 65
    info = count_segments(text)
    assert info.units == 133 and info.segments == 2    # 66 | 2 + 65 = 67
    text = "ą" * 66 + EMOJI + "ą" * 66
    assert count_segments(text).units == 134
    assert count_segments(text).segments == 3          # plain division would say 2


def test_ucs2_chars_lists_offenders_once_in_order() -> None:
    info = count_segments(f"Hola {EMOJI} ąbc ą 中 é {EMOJI}")
    assert info.ucs2_chars == (EMOJI, "ą", "中")
    assert count_segments("plain text é").ucs2_chars == ()


@pytest.mark.parametrize("text, expected", [
    ("", True), ("Hello {name} €5", True), ("ñandú", False), ("\t", False), (EMOJI, False),
])
def test_is_gsm7(text: str, expected: bool) -> None:
    assert is_gsm7(text) is expected


# --- GSM-7 lookalike replacement --------------------------------------------------------------

def test_smart_punctuation_becomes_gsm7() -> None:
    original = "\u201cHola\u201d \u2014 qu\u00e9 tal\u2026 it\u2019s 5\u20136 \u22121\u00a0ok"
    assert count_segments(original).encoding == "UCS-2"
    text, pairs = gsm7_replace(original)
    assert text == "\"Hola\" - qué tal... it's 5-6 -1 ok"
    assert count_segments(text).encoding == "GSM-7"
    assert pairs == [("\u201c", '"'), ("\u201d", '"'), ("\u2014", "-"), ("\u2026", "..."),
                     ("\u2019", "'"), ("\u2013", "-"), ("\u2212", "-"), ("\u00a0", " ")]


def test_spanish_accents_fold_but_gsm7_letters_survive() -> None:
    text, pairs = gsm7_replace("Canción: tú estás aquí, Ángel; él, niño, pingüino, à Çà, ça, crème brûlée")
    assert text == "Cancion: tu estas aqui, Angel; él, niño, pingüino, à Çà, ca, crème brulée"
    assert is_gsm7(text)
    assert pairs == [("ó", "o"), ("ú", "u"), ("á", "a"), ("í", "i"), ("Á", "A"), ("ç", "c"), ("û", "u")]


def test_pairs_are_distinct() -> None:
    _, pairs = gsm7_replace("á á á \u2019\u2019")
    assert pairs == [("á", "a"), ("\u2019", "'")]


@pytest.mark.parametrize("text", [EMOJI, "中文", "مرحبا", "ł"])
def test_unmappable_characters_are_left_alone(text: str) -> None:
    assert gsm7_replace(text) == (text, [])


def test_gsm7_text_is_unchanged() -> None:
    text = "Hola ñ é ü à Ç {x} €"
    assert gsm7_replace(text) == (text, [])


def test_unicode_spaces_become_plain_spaces() -> None:
    text, _ = gsm7_replace("a\u2009b\u3000c\u202fd")
    assert text == "a b c d"


# --- numbers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    "+265991234567", "0991234567", "991234567", "00265991234567", "+265 99 123 4567",
    "0991-234-567", "(099) 123 4567", "  +265991234567  ", "sms:+265991234567",
])
def test_malawi_number_forms(raw: str) -> None:
    assert normalise_number(raw) == Address("+265991234567", "e164", "sms")


def test_airtel_malawi_number() -> None:
    assert normalise_number("0881 234 567").value == "+265881234567"


@pytest.mark.parametrize("raw", ["whatsapp:+265991234567", "WhatsApp:0991234567", "whatsapp: +265 99 123 4567"])
def test_whatsapp_prefix(raw: str) -> None:
    assert normalise_number(raw) == Address("+265991234567", "e164", "whatsapp")


@pytest.mark.parametrize("raw, expected", [
    ("9912-3456", "+50499123456"), ("3312 3456", "+50433123456"), ("+504 9912 3456", "+50499123456"),
    ("00504 9912 3456", "+50499123456"),
])
def test_honduras_numbers(raw: str, expected: str) -> None:
    assert normalise_number(raw, default_country="HN") == Address(expected, "e164", "sms")


def test_international_number_ignores_default_country() -> None:
    assert normalise_number("+265991234567", default_country="HN").value == "+265991234567"


@pytest.mark.parametrize("raw", ["12345", "321", "12345678", "whatsapp:12345"])
def test_short_codes(raw: str) -> None:
    address = normalise_number(raw)
    assert address.kind == "shortcode"
    assert address.value == raw.removeprefix("whatsapp:")


@pytest.mark.parametrize("raw", [
    "hello", "", "   ", "whatsapp:", None, "+12", "12", "+1 555 0100", "123456789012", "0991234",
])
def test_invalid_numbers(raw: str) -> None:
    with pytest.raises(InvalidNumber, match="not a phone number"):
        normalise_number(raw)  # type: ignore[arg-type]


def test_invalid_number_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        normalise_number("hello")


@pytest.mark.parametrize("number, country", [
    ("+265991234567", "MW"), ("+265881234567", "MW"), ("+50499123456", "HN"), ("+442079460958", "GB"),
    ("12345", None), ("", None), ("0991234", None), ("+999123", None), ("not a number", None),
])
def test_country_of(number: str, country: str | None) -> None:
    assert country_of(number) == country


@pytest.mark.parametrize("number, masked", [
    ("+265991234567", "+26599*****67"),
    ("+50499123456", "+50499****56"),
    ("12345", "1****"),
    ("", ""),
])
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def test_mask_hides_the_subscriber_digits() -> None:
    masked = mask_number("+265991234567")
    assert "12345" not in masked and len(masked) == len("+265991234567")


def test_the_region_read_with_a_number_is_the_one_country_of_reads_again() -> None:
    import phonenumbers

    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        if example is None:
            continue
        number = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        address = normalise_number(number)
        # (A plan several regions share names its main one: Aland's numbers read as Finland's, FI.)
        assert address.region is not None and address.region == country_of(address.value), number
        checked += 1
    assert checked > 200
    assert normalise_number("12345").region is None  # a short code has none
