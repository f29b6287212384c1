"""Contacts CSV parsing: usable rows kept, one error per bad line, by physical line number."""
from __future__ import annotations

import pytest

from gateway.settings import ROOT
from gateway.people.csvio import ContactRow, parse_contacts
from gateway.core.places import load_gazetteers

GAZETTEERS = list(load_gazetteers(ROOT / "flows" / "places").values())
LANGUAGES = ("en", "ny", "es")


def parse(text: str, country: str = "MW") -> tuple[list[ContactRow], list[str]]:
    return parse_contacts(text, country, GAZETTEERS, LANGUAGES)


def test_good_rows_are_normalised() -> None:
    rows, errors = parse("number,name,language,place,tags\n"
                         "0991234567, Chikondi Banda ,NY,zomba,Health; WATER|farming\n"
                         "+265 88 123 4567,,,,\n")
    assert errors == []
    assert rows == [
        ContactRow(2, "+265991234567", "Chikondi Banda", "ny", "Zomba", ("health", "water", "farming")),
        ContactRow(3, "+265881234567", None, None, None, ()),
    ]


def test_header_in_any_order_and_case_with_bom() -> None:
    rows, errors = parse("\ufeff Tags ,NUMBER,Name\nx,0991234567,Ana\n")
    assert errors == []
    assert [(r.number, r.name, r.tags) for r in rows] == [("+265991234567", "Ana", ("x",))]


def test_each_bad_line_is_named_and_good_lines_kept() -> None:
    rows, errors = parse("number,name,language,place,tags\n"
                         "0991234567,A,en,Zomba,\n"         # 2 good
                         "12345678901234,B,en,Zomba,\n"     # 3 bad number
                         "0881234567,C,fr,Zomba,\n"         # 4 unknown language
                         "0881234568,D,en,Narnia,\n"        # 5 unknown place
                         "+265991234567,E,en,,\n"           # 6 repeats line 2
                         "0991111111,F,en,Zomba,x,extra\n"  # 7 too many values
                         "0991111112,G,,,\n")               # 8 good
    assert [r.line for r in rows] == [2, 8]
    assert [e.split(":")[0] for e in errors] == [f"line {n}" for n in (3, 4, 5, 6, 7)]
    assert "language 'fr'" in errors[1] and "'Narnia'" in errors[2]
    assert errors[3] == "line 6: number repeats line 2; this line was skipped"
    assert errors[4] == "line 7: 6 values for 5 columns"


def test_line_numbers_are_physical_lines() -> None:
    rows, errors = parse("number,name,tags\n"
                         "\n"
                         '0991234567,"Ana\nBanda",x\n'  # lines 3-4: a quoted line break
                         ",,\n"                          # line 5: blank cells
                         "\n"
                         "bad,B,\n"                      # line 7
                         "0881234567,C,\n")              # line 8
    assert errors == ["line 7: number 'bad': 'bad' is not a phone number: it has no digits"]
    assert [r.name for r in rows] == ["Ana\nBanda", "C"]
    assert rows[1].line == 8


def test_an_error_names_the_line_a_multi_line_record_starts_on() -> None:
    rows, errors = parse('number,name\nbad,"Ana\nBanda"\n')
    assert errors[0].startswith("line 2: number 'bad'")


def test_missing_number_column_is_a_line_1_error() -> None:
    rows, errors = parse("name,phone\nAna,0991234567\n")
    assert rows == []
    assert errors == ["line 1: expected the columns number, name, language, place, tags (number is required)"
                      "; unknown: phone"]


@pytest.mark.parametrize("text", ["", "\ufeff", "\n"])
def test_empty_file(text: str) -> None:
    rows, errors = parse(text)
    assert rows == []
    assert len(errors) == 1 and errors[0].startswith("line 1: the file is empty")


def test_honduran_numbers_and_places_with_default_country_hn() -> None:
    rows, errors = parse("number,name,language,place\n"
                         "9912-3456,María,es,Tegucigalpa\n"
                         "+504 9912 3457,José,es,santa barbara\n"
                         "0991234567,Ana,ny,Zomba\n", country="HN")
    assert len(errors) == 1 and errors[0].startswith("line 4: number '0991234567'")
    assert [(r.number, r.name, r.place) for r in rows] == [
        ("+50499123456", "María", "Francisco Morazán"), ("+50499123457", "José", "Santa Bárbara")]
