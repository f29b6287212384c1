"""Gazetteer loading and place matching, against the shipped flows/places/*.yaml."""
from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.places import (Gazetteer, GazetteerError, Place, find_place, load_gazetteer, load_gazetteers, match_place, match_place_prefix)

PLACES_DIR = Path(__file__).resolve().parent.parent / "flows" / "places"

MALAWI_DISTRICTS = {
    "Northern": ["Chitipa", "Karonga", "Likoma", "Mzimba", "Nkhata Bay", "Rumphi"],
    "Central": ["Dedza", "Dowa", "Kasungu", "Lilongwe", "Mchinji", "Nkhotakota", "Ntcheu",
                "Ntchisi", "Salima"],
    "Southern": ["Balaka", "Blantyre", "Chikwawa", "Chiradzulu", "Machinga", "Mangochi",
                 "Mulanje", "Mwanza", "Nsanje", "Thyolo", "Phalombe", "Zomba", "Neno"],
}
HONDURAS_DEPARTMENTS = [
    "Atlántida", "Choluteca", "Colón", "Comayagua", "Copán", "Cortés", "El Paraíso",
    "Francisco Morazán", "Gracias a Dios", "Intibucá", "Islas de la Bahía", "La Paz", "Lempira",
    "Ocotepeque", "Olancho", "Santa Bárbara", "Valle", "Yoro",
]


@pytest.fixture(scope="module")
def gazetteers() -> dict[str, Gazetteer]:
    return load_gazetteers(PLACES_DIR)


@pytest.fixture(scope="module")
def all_g(gazetteers: dict[str, Gazetteer]) -> list[Gazetteer]:
    return list(gazetteers.values())


def name_of(place: Place | None) -> str | None:
    return place.name if place else None


# --------------------------------------------------------------------------- shipped files


def test_shipped_gazetteers_are_malawi_and_honduras(gazetteers: dict[str, Gazetteer]) -> None:
    assert set(gazetteers) == {"malawi", "honduras"}
    mw, hn = gazetteers["malawi"], gazetteers["honduras"]
    assert (mw.country, mw.timezone) == ("MW", "Africa/Blantyre")
    assert (hn.country, hn.timezone) == ("HN", "America/Tegucigalpa")


def test_malawi_has_all_28_districts_with_regions(gazetteers: dict[str, Gazetteer]) -> None:
    mw = gazetteers["malawi"]
    assert len(mw.places) == 28
    got = {p.name: p.region for p in mw.places}
    want = {name: region for region, names in MALAWI_DISTRICTS.items() for name in names}
    assert got == want
    assert all(p.country == "MW" and p.gazetteer == "malawi" and p.timezone == "Africa/Blantyre"
               for p in mw.places)


def test_honduras_has_all_18_departments_spelled_with_accents(gazetteers: dict[str, Gazetteer]) -> None:
    hn = gazetteers["honduras"]
    assert len(hn.places) == 18
    assert sorted(p.name for p in hn.places) == sorted(HONDURAS_DEPARTMENTS)
    assert all(p.country == "HN" and p.timezone == "America/Tegucigalpa" for p in hn.places)


def test_load_gazetteer_single_file_matches_directory_load(gazetteers: dict[str, Gazetteer]) -> None:
    assert load_gazetteer(PLACES_DIR / "honduras.yaml") == gazetteers["honduras"]
    assert load_gazetteer(str(PLACES_DIR / "malawi.yaml")) == gazetteers["malawi"]


# --------------------------------------------------------------------------- match_place


@pytest.mark.parametrize("text, expected", [
    ("zomba", "Zomba"),
    ("ZOMBA", "Zomba"),
    ("  Zomba! ", "Zomba"),
    ("Nkhatabay", "Nkhata Bay"),
    ("nkhata-bay", "Nkhata Bay"),
    ("nkata bay", "Nkhata Bay"),
    ("Nkatabay", "Nkhata Bay"),
    ("Lilongwe city", "Lilongwe"),
    ("lilongwecity", "Lilongwe"),
    ("Blantyre City", "Blantyre"),
    ("nkhota kota", "Nkhotakota"),
    ("Chiradzlu", "Chiradzulu"),
    ("Mangoch", "Mangochi"),
    ("Palombi", "Phalombe"),  # two typos in an 8-letter name
    ("zmoba", "Zomba"),  # transposition
    ("francisco morazan", "Francisco Morazán"),
    ("FRANCISCO MORAZÁN", "Francisco Morazán"),
    ("fransisco morasan", "Francisco Morazán"),
    ("Cortes", "Cortés"),
    ("Santa Barbra", "Santa Bárbara"),
    ("santabarbara", "Santa Bárbara"),
    ("islas de la bahia", "Islas de la Bahía"),
    ("intibuca", "Intibucá"),
    ("El Paraiso", "El Paraíso"),
    ("Olanch", "Olancho"),
    ("Ocotepque", "Ocotepeque"),
])
def test_match_place_tolerates_case_accents_spacing_and_typos(all_g: list[Gazetteer], text: str,
                                                              expected: str) -> None:
    assert name_of(match_place(text, all_g)) == expected


@pytest.mark.parametrize("text, expected", [
    ("Mzuzu", "Mzimba"),
    ("Limbe", "Blantyre"),
    ("Tegucigalpa", "Francisco Morazán"),
    ("tegusigalpa", "Francisco Morazán"),
    ("San Pedro Sula", "Cortés"),
    ("sanpedrosula", "Cortés"),
    ("Roatan", "Islas de la Bahía"),
    ("La Ceiba", "Atlántida"),
    ("Comayaguela", "Francisco Morazán"),
    ("Danli", "El Paraíso"),
])
def test_match_place_by_alias(all_g: list[Gazetteer], text: str, expected: str) -> None:
    assert name_of(match_place(text, all_g)) == expected


def test_accented_input_matches_unaccented_name(tmp_path: Path) -> None:
    (tmp_path / "plain.yaml").write_text(
        "gazetteer: plain\ncountry: HN\ntimezone: America/Tegucigalpa\n"
        "places:\n  - name: Colon\n  - name: Copan\n", encoding="utf-8")
    plain = list(load_gazetteers(tmp_path).values())
    assert name_of(match_place("Colón", plain)) == "Colon"
    assert name_of(match_place("COPÁN", plain)) == "Copan"


@pytest.mark.parametrize("text", [
    "yes", "no", "YES", "ok", "stop", "help", "clinic", "water", "nurse", "absent", "school",
    "hospital", "report", "thanks",
    "1", "2", "10", "100", "2024", "",  "  ", "!!!",
    "ine", "ayi", "inde", "zikomo", "chipatala", "madzi", "mwana", "mimba", "chikwama", "nyengo",
    "si", "sí", "gracias", "agua", "clinica", "escuela", "ayuda", "colonia", "esperanza",
    "lempiras", "copa", "paz", "bay", "city", "santa", "san",
])
def test_common_words_and_numbers_match_nothing(all_g: list[Gazetteer], text: str) -> None:
    assert match_place(text, all_g) is None


def test_whole_report_text_is_not_a_place(all_g: list[Gazetteer]) -> None:
    assert match_place("CLINIC ZOMBA NO nurse absent", all_g) is None


def test_short_names_only_match_exactly(all_g: list[Gazetteer]) -> None:
    assert name_of(match_place("dowa", all_g)) == "Dowa"
    assert name_of(match_place("Yoro", all_g)) == "Yoro"
    assert match_place("dowe", all_g) is None
    assert match_place("nino", all_g) is None  # not Neno
    assert match_place("dowaa", all_g) is None
    assert match_place("yorro", all_g) is None


@pytest.mark.parametrize("text", ["sala", "lima", "bala", "vale", "util"])
def test_four_letter_words_need_to_be_one_letter_off(all_g: list[Gazetteer], text: str) -> None:
    assert match_place(text, all_g) is None  # Salima, Likoma, Balaka (0.8); Valle, Utila (common words)


def test_four_letter_word_one_letter_short_matches(all_g: list[Gazetteer]) -> None:
    assert name_of(match_place("zomb", all_g)) == "Zomba"
    assert name_of(match_place("Mzuz", all_g)) == "Mzimba"


def test_far_off_words_do_not_match(all_g: list[Gazetteer]) -> None:
    assert match_place("zumbo", all_g) is None  # two typos in five letters is too far
    assert match_place("komba", all_g) is None  # first letter differs
    assert match_place("lilongwe town", all_g) is None  # extra word is not a typo


def _fake(name: str, country: str, *place_names: str) -> Gazetteer:
    places = tuple(Place(n, country, name, "UTC", None, ()) for n in place_names)
    return Gazetteer(name, country, "UTC", places)


def test_near_tie_between_two_places_is_ambiguous() -> None:
    g = [_fake("t", "XX", "Balaka", "Balaki")]
    assert match_place("balako", g) is None
    assert name_of(match_place("balaka", g)) == "Balaka"  # exact still wins


def test_close_but_unequal_scores_are_ambiguous() -> None:
    g = [_fake("t", "XX", "Mulanje", "Mulanjeni")]
    assert match_place("mulanjen", g) is None  # 0.933 vs 0.941: too close to call


def test_clear_winner_is_not_ambiguous(all_g: list[Gazetteer]) -> None:
    assert name_of(match_place("ntchisy", all_g)) == "Ntchisi"  # Ntcheu is clearly further


def test_same_name_in_two_countries_needs_prefer_country(all_g: list[Gazetteer]) -> None:
    gs = [*all_g, _fake("tanzania", "TZ", "Mwanza", "Dodoma")]
    assert match_place("mwanza", gs) is None
    mw = match_place("mwanza", gs, prefer_country="MW")
    tz = match_place("Mwanza", gs, prefer_country="tz")
    assert mw is not None and (mw.name, mw.country) == ("Mwanza", "MW")
    assert tz is not None and (tz.name, tz.country) == ("Mwanza", "TZ")
    assert match_place("mwanzaa", gs) is None  # a fuzzy tie across countries too
    fuzzy = match_place("mwanzaa", gs, prefer_country="TZ")
    assert fuzzy is not None and fuzzy.country == "TZ"


def test_prefer_country_is_tried_first_but_others_still_match(all_g: list[Gazetteer]) -> None:
    gs = [*all_g, _fake("other", "XX", "Zombar")]
    place = match_place("zombaa", gs, prefer_country="XX")
    assert place is not None and place.name == "Zombar"
    place = match_place("zombaa", gs, prefer_country="MW")
    assert place is not None and place.name == "Zomba"
    assert name_of(match_place("Tegucigalpa", all_g, prefer_country="MW")) == "Francisco Morazán"


def test_exact_match_anywhere_beats_fuzzy_in_preferred_country(all_g: list[Gazetteer]) -> None:
    gs = [*all_g, _fake("other", "XX", "Zombax")]
    place = match_place("zomba", gs, prefer_country="XX")
    assert place is not None and (place.name, place.country) == ("Zomba", "MW")


# --------------------------------------------------------------------------- match_place_prefix


@pytest.mark.parametrize("tokens, expected", [
    (["nkhata", "bay", "yes"], ("Nkhata Bay", 2)),
    (["nkata", "bay", "yes"], ("Nkhata Bay", 2)),
    (["santa", "barbra", "no"], ("Santa Bárbara", 2)),
    (["Santa", "Bárbara", "clinic", "closed"], ("Santa Bárbara", 2)),
    (["zomba"], ("Zomba", 1)),
    (["ZOMBA", "clinic", "no", "nurse"], ("Zomba", 1)),
    (["zomba", "city", "no"], ("Zomba", 2)),
    (["lilongwe", "city"], ("Lilongwe", 2)),
    (["lilongwe", "town"], ("Lilongwe", 1)),
    (["islas", "de", "la", "bahia", "si"], ("Islas de la Bahía", 4)),
    (["gracias", "a", "dios"], ("Gracias a Dios", 3)),
    (["san", "pedro", "sula", "agua"], ("Cortés", 3)),
    (["Chiradzlu", "water"], ("Chiradzulu", 1)),
    (["nkhotakota", "mwana"], ("Nkhotakota", 1)),
])
def test_match_place_prefix(all_g: list[Gazetteer], tokens: list[str],
                            expected: tuple[str, int]) -> None:
    result = match_place_prefix(tokens, all_g)
    assert result is not None
    assert (result[0].name, result[1]) == expected


@pytest.mark.parametrize("tokens", [
    ["clinic", "zomba"],  # the place must start at token 0
    ["no", "zomba"],
    ["in", "zomba"],
    ["yes"],
    ["ine"],
    ["si", "no"],
    ["1", "2", "3"],
    [],
    ["mango", "si"],  # not Mangochi
    ["mango", "chilala"],
    ["salt", "mimba"],  # not Salima
    ["name", "no"],  # not Neno
    ["gracias", "amigo"],  # not Gracias a Dios
    ["mwana", "zomba"],
])
def test_match_place_prefix_non_matches(all_g: list[Gazetteer], tokens: list[str]) -> None:
    assert match_place_prefix(tokens, all_g) is None


def test_match_place_prefix_uses_at_most_four_tokens() -> None:
    g = [_fake("t", "XX", "Aa Bb Cc Dd Ee")]
    assert match_place_prefix(["aa", "bb", "cc", "dd", "ee"], g) is None
    g = [_fake("t", "XX", "Aa Bb Cc Dd")]
    assert match_place_prefix(["aa", "bb", "cc", "dd", "ee"], g) == (g[0].places[0], 4)


def test_match_place_prefix_prefers_longest_exact_run() -> None:
    g = [_fake("t", "XX", "Blantyre", "Blantyre Rural")]
    assert match_place_prefix(["blantyre", "rural", "no"], g) == (g[0].places[1], 2)
    assert match_place_prefix(["blantyre", "rurall"], g) == (g[0].places[0], 1)


def test_match_place_prefix_prefer_country(all_g: list[Gazetteer]) -> None:
    gs = [*all_g, _fake("tanzania", "TZ", "Mwanza")]
    assert match_place_prefix(["mwanza", "yes"], gs) is None
    result = match_place_prefix(["mwanza", "yes"], gs, prefer_country="MW")
    assert result is not None and result[0].country == "MW" and result[1] == 1


# --------------------------------------------------------------------------- find_place


def test_find_place_is_exact_on_name_or_alias(all_g: list[Gazetteer]) -> None:
    assert name_of(find_place("Nkhata Bay", all_g)) == "Nkhata Bay"
    assert name_of(find_place("nkhatabay", all_g)) == "Nkhata Bay"
    assert name_of(find_place("santa barbara", all_g)) == "Santa Bárbara"
    assert name_of(find_place("Mzuzu", all_g)) == "Mzimba"
    assert find_place("nkata bay", all_g) is None  # no typo tolerance
    assert find_place("Santa Barbra", all_g) is None
    assert find_place("", all_g) is None


# --------------------------------------------------------------------------- validation

GOOD_HEAD = "gazetteer: test\ncountry: MW\ntimezone: Africa/Blantyre\n"


def _write(tmp_path: Path, text: str, name: str = "test.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(GazetteerError) as info:
        load_gazetteer(path)
    return str(info.value)


def test_valid_minimal_file_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_HEAD + "places:\n  - name: Zomba\n    aliases: [Zomba City]\n"
                                        "  - name: Neno\n")
    g = load_gazetteer(path)
    assert g == Gazetteer("test", "MW", "Africa/Blantyre", (
        Place("Zomba", "MW", "test", "Africa/Blantyre", None, ("Zomba City",)),
        Place("Neno", "MW", "test", "Africa/Blantyre", None, ()),
    ))


def test_missing_name_names_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_HEAD + "places:\n  - name: Zomba\n  - region: Southern\n")
    message = _error(path)
    assert message.startswith(str(path))
    assert "places[1].name: missing" in message


def test_empty_name_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_HEAD + "places:\n  - name: '  '\n")
    message = _error(path)
    assert str(path) in message and "places[0].name" in message


def test_bad_timezone_names_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "gazetteer: test\ncountry: MW\ntimezone: Africa/Zomba_City\n"
                            "places:\n  - name: Zomba\n")
    message = _error(path)
    assert message.startswith(f"{path}: timezone:")
    assert "Africa/Zomba_City" in message


def test_duplicate_alias_names_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_HEAD + "places:\n  - name: Zomba\n    aliases: [Zomba City]\n"
                                        "  - name: Machinga\n    aliases: [Liwonde, ZOMBA city]\n")
    message = _error(path)
    assert message.startswith(f"{path}: places[1].aliases[1]:")
    assert "duplicate" in message and "places[0].aliases[0]" in message


def test_alias_equal_to_another_name_after_folding_is_duplicate(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_HEAD + "places:\n  - name: Nkhata Bay\n  - name: Other\n"
                                        "    aliases: [nkhatabay]\n")
    assert "places[1].aliases[0]" in _error(path)


@pytest.mark.parametrize("body, key", [
    ("country: MW\ntimezone: Africa/Blantyre\nplaces:\n  - name: A\n", "gazetteer"),
    ("gazetteer: t\ntimezone: Africa/Blantyre\nplaces:\n  - name: A\n", "country"),
    ("gazetteer: t\ncountry: MWI\ntimezone: Africa/Blantyre\nplaces:\n  - name: A\n", "country"),
    ("gazetteer: t\ncountry: M1\ntimezone: Africa/Blantyre\nplaces:\n  - name: A\n", "country"),
    ("gazetteer: t\ncountry: MW\nplaces:\n  - name: A\n", "timezone"),
    (GOOD_HEAD, "places"),
    (GOOD_HEAD + "places: []\n", "places"),
    (GOOD_HEAD + "places: Zomba\n", "places"),
    (GOOD_HEAD + "places:\n  - Zomba\n", "places[0]"),
    (GOOD_HEAD + "places:\n  - name: [Zomba]\n", "places[0].name"),
    (GOOD_HEAD + "places:\n  - name: Zomba\n    aliases: Zomba City\n", "places[0].aliases"),
    (GOOD_HEAD + "places:\n  - name: Zomba\n    aliases: [Zomba City, 7]\n", "places[0].aliases[1]"),
    (GOOD_HEAD + "places:\n  - name: Zomba\n    alias: [Zomba City]\n", "places[0].alias"),
    (GOOD_HEAD + "places:\n  - name: Zomba\n    region: [South]\n", "places[0].region"),
    (GOOD_HEAD + "places:\n  - name: '***'\n", "places[0].name"),
    (GOOD_HEAD + "zone: x\nplaces:\n  - name: A\n", "zone"),
])
def test_broken_files_name_the_key(tmp_path: Path, body: str, key: str) -> None:
    path = _write(tmp_path, body)
    assert _error(path).startswith(f"{path}: {key}:")


def test_invalid_yaml_and_non_mapping_name_the_file(tmp_path: Path) -> None:
    broken = _write(tmp_path, "places: [unclosed\n", "a.yaml")
    assert _error(broken).startswith(f"{broken}: invalid YAML")
    a_list = _write(tmp_path, "- just\n- a list\n", "b.yaml")
    assert _error(a_list).startswith(f"{a_list}:")


def test_load_gazetteers_rejects_duplicate_gazetteer_names(tmp_path: Path) -> None:
    _write(tmp_path, GOOD_HEAD + "places:\n  - name: A\n", "one.yaml")
    _write(tmp_path, GOOD_HEAD + "places:\n  - name: B\n", "two.yaml")
    with pytest.raises(GazetteerError) as info:
        load_gazetteers(tmp_path)
    message = str(info.value)
    assert "two.yaml: gazetteer:" in message and "one.yaml" in message and "'test'" in message


def test_load_gazetteers_reads_only_yaml_and_keys_by_name(tmp_path: Path) -> None:
    _write(tmp_path, GOOD_HEAD.replace("test", "alpha") + "places:\n  - name: A\n", "x.yaml")
    _write(tmp_path, "not: [valid", "notes.txt")
    loaded = load_gazetteers(tmp_path)
    assert list(loaded) == ["alpha"]
    assert loaded["alpha"].places[0].gazetteer == "alpha"


def test_load_gazetteers_reports_broken_file_in_directory(tmp_path: Path) -> None:
    _write(tmp_path, GOOD_HEAD + "places:\n  - name: A\n  - name: a\n", "dup.yaml")
    with pytest.raises(GazetteerError, match=r"dup\.yaml: places\[1\]\.name: duplicate"):
        load_gazetteers(tmp_path)
