"""The console in English and Spanish: nothing in a template escapes translation, every message has its
Spanish, and the language follows the account, then the browser; the JSON API stays English."""
from __future__ import annotations

import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from jinja2 import Environment, nodes
from sqlalchemy import select

from gateway.models import User
from gateway.web.console import i18n
from tests.conftest import Auth

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "gateway" / "web" / "console" / "templates"
SPANISH = ROOT / "gateway" / "translations" / "es" / "LC_MESSAGES" / "messages.po"
GETTEXT = {"_", "gettext", "ngettext", "pgettext", "npgettext"}  # the console's translating calls
HOLE = "\x01"  # where a Jinja expression or a {% trans %} block was: not text a person reads
WORD = re.compile(r"[^\W\d_]{2,}")
# Attributes a person reads (or hears, with a screen reader).
READ_ATTRS = {"title", "placeholder", "aria-label", "alt", "label"}
# Text that is code or data, not prose: SMS keywords, CSV samples, file names.
NOT_PROSE = {"code", "pre", "script", "style"}


def bare_words(text: str) -> list[str]:
    """Words that would be shown untranslated: two letters or more, not an acronym or SMS keyword (ACK, SMS)."""
    return [w for w in WORD.findall(text.replace(HOLE, " ")) if not w.isupper()]


class _Visible(HTMLParser):
    """Collects the text nodes and read attributes of a template whose Jinja parts are holes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            # A button shows its content, not its value (format=pdf); a submit input shows its value.
            shown = name in READ_ATTRS or (name == "value" and (
                tag == "input" and values.get("type") in ("submit", "button", "reset")))
            if shown and value and bare_words(value):
                self.found.append(f"<{tag} {name}={value!r}>")
        if tag not in ("br", "input", "meta", "link", "img", "hr", "line", "rect"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if not NOT_PROSE.intersection(self.stack) and bare_words(data):
            self.found.append(data.strip())


def untranslated_markup(source: str) -> list[str]:
    """Text and read attributes in a template's HTML that are not inside _() or {% trans %}."""
    text = re.sub(r"\{#.*?#\}", "", source, flags=re.S)
    text = re.sub(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}", HOLE, text, flags=re.S)
    text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", HOLE, text, flags=re.S)
    parser = _Visible()
    parser.feed(text)
    parser.close()
    return parser.found


def _shown_constants(expr: nodes.Node) -> list[str]:
    """String constants an output expression prints as they are ({{ "never" }}, {{ a or "none" }})."""
    if isinstance(expr, nodes.Const):
        return [expr.value] if isinstance(expr.value, str) else []
    if isinstance(expr, nodes.CondExpr):
        return _shown_constants(expr.expr1) + (_shown_constants(expr.expr2) if expr.expr2 else [])
    if isinstance(expr, nodes.Or | nodes.And):
        return _shown_constants(expr.left) + _shown_constants(expr.right)
    if isinstance(expr, nodes.Concat):
        return [c for node in expr.nodes for c in _shown_constants(node)]
    if isinstance(expr, nodes.Filter) and expr.node is not None:
        return _shown_constants(expr.node)
    if isinstance(expr, nodes.Call) and isinstance(expr.node, nodes.Name):
        if expr.node.name in GETTEXT:
            return []
        # A macro's labels (select("place", "Place", ...)): a field name is one lower-case word, a label is not.
        args = list(expr.args) + [k.value for k in expr.kwargs]
        return [c for a in args for c in _shown_constants(a) if c != c.lower() or " " in c]
    return []


def _in_hidden_attribute(before: str) -> bool:
    """Whether markup ending with `before` is inside an attribute nobody reads (class="...", id="...")."""
    tag = before[before.rfind("<"):]
    if ">" in tag:
        return False
    open_attr = re.search(r"([\w-]+)=[\"'][^\"']*$", tag)
    return bool(open_attr) and open_attr.group(1) not in READ_ATTRS | {"value"}


def untranslated_output(env: Environment, source: str) -> list[str]:
    """String constants printed by {{ ... }} without _() (outside class, id and other unread attributes)."""
    found, markup = [], ""
    for output in env.parse(source).find_all(nodes.Output):
        for child in output.nodes:
            if isinstance(child, nodes.TemplateData):
                markup += child.data
            elif not _in_hidden_attribute(markup):
                found += [c for c in _shown_constants(child) if bare_words(c)]
    return found


@pytest.fixture(scope="module")
def env() -> Environment:
    return Environment(extensions=["jinja2.ext.i18n"])


def test_the_check_finds_a_bare_string(env: Environment) -> None:
    """The checks below can fail: each kind of untranslated text is caught, translated text is not."""
    assert untranslated_markup("<p>Hello <b>{{ name }}</b></p>") == ["Hello"]
    assert untranslated_markup('<input placeholder="e.g. Banda">') == ["<input placeholder='e.g. Banda'>"]
    assert untranslated_markup('<input type="submit" value="Save">') == ["<input value='Save'>"]
    assert untranslated_markup('<span title="Not checked">x</span>') == ["<span title='Not checked'>"]
    assert untranslated_output(env, '{{ "never" if x else _("ok") }}') == ["never"]
    assert untranslated_output(env, '{{ name or "(no name)" }}') == ["(no name)"]
    assert untranslated_output(env, '{{ select("place", "Place", xs) }}') == ["Place"]
    translated = ('<p>{{ _("Hello") }} {% trans n=3 %}<b>{{ n }}</b> supporters{% endtrans %}</p>'
                  '<input placeholder="{{ _(\'e.g. Banda\') }}"> <code>HELP</code> <th>ACK</th> ·')
    assert untranslated_markup(translated) == [] and untranslated_output(env, translated) == []
    assert untranslated_output(env, '{{ select("place", _("Place"), xs) }} {{ x.strftime("%Y-%m-%d") }}') == []
    assert untranslated_output(env, '<b class="card{{ \' over\' if x }}" title="{{ \'Over\' }}">') == ["Over"]


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_no_string_in_a_template_escapes_translation(env: Environment, template: str) -> None:
    source = (TEMPLATES / template).read_text(encoding="utf-8")
    assert untranslated_markup(source) == [], f"{template}: wrap these in _() or {{% trans %}}"
    assert untranslated_output(env, source) == [], f"{template}: wrap these in _()"


def _spanish():  # type: ignore[no-untyped-def]
    with SPANISH.open("rb") as f:
        return read_po(f, locale="es")


def test_every_message_has_its_spanish() -> None:
    catalog = _spanish()
    missing = [m.id for m in catalog if m.id and (not all(m.string) if isinstance(m.string, tuple) else not m.string)]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert missing == [] and fuzzy == [], (missing, fuzzy)
    # Placeholders (%(name)s) the same in both languages: babel's own checks.
    problems = [(m.id, [str(e) for e in errors]) for m, errors in catalog.check()]
    assert problems == []


def test_the_catalogue_holds_every_message_in_the_code() -> None:
    """A new _() string fails here until `pybabel extract/update` and a Spanish translation bring it in."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    in_code = {message if isinstance(message, str) else message[0]
               for _file, _line, message, _comments, _context in extract_from_dir(
                   str(ROOT), method_map, options_map, keywords=keywords)}
    in_catalogue = {m.id if isinstance(m.id, str) else m.id[0] for m in _spanish() if m.id}
    assert sorted(in_code - in_catalogue) == []


def test_catalogues_compile_when_missing_or_older(tmp_path: Path) -> None:
    po = tmp_path / "es" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_bytes(SPANISH.read_bytes())
    assert i18n.compile_catalogues(tmp_path) == [po.with_suffix(".mo")]
    assert i18n.compile_catalogues(tmp_path) == []  # up to date: not written again


# --------------------------------------------------------------------------- the language of a page


def spanish(headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"Accept-Language": "es-HN,es;q=0.9,en;q=0.5", **(headers or {})}


def test_english_by_default_and_spanish_when_the_browser_asks(client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in page and "Log in" in page
    r = client.get("/login", headers=spanish())
    page = r.get_data(as_text=True)
    assert "Accept-Language" in r.headers["Vary"]
    assert '<html lang="es">' in page and "Iniciar sesión" in page and "Log in" not in page
    auth.login("organizer")
    page = client.get("/", headers=spanish()).get_data(as_text=True)
    for english, spanish_word in (("Supporters", "Simpatizantes"), ("Broadcasts", "Difusiones"),
                                  ("Inbox", "Bandeja de entrada"), ("Log out", "Cerrar sesión")):
        assert spanish_word in page and f">{english}<" not in page


def test_the_account_choice_beats_the_browser_and_persists(app, client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    email = auth.user("organizer")
    auth.login("organizer")
    token = auth.csrf("/account")
    r = client.post("/language", data={"csrf_token": token, "locale": "es", "next": "/account"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/account")
    with app.extensions["gateway"].sessions() as s:
        assert s.scalar(select(User.locale).where(User.email == email)) == "es"
    page = client.get("/account", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Idioma de la consola" in page and "Mi teléfono" in page
    client.post("/language", data={"csrf_token": token, "locale": "en", "next": "/account"})
    assert "Language of the console" in client.get("/account", headers=spanish()).get_data(as_text=True)


def test_a_bad_language_choice_is_refused(client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    auth.login("viewer")
    token = auth.csrf("/")
    assert client.post("/language", data={"csrf_token": token, "locale": "xx"}).status_code == 400
    assert client.post("/language", data={"locale": "es"}).status_code == 400  # no CSRF token
    # Somewhere else afterwards is never followed: the dashboard instead.
    r = client.post("/language", data={"csrf_token": token, "locale": "es", "next": "//evil.example/"})
    assert r.headers["Location"] == "/"


def test_flashes_and_errors_are_in_the_page_language(client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/", headers=spanish(), follow_redirects=True).get_data(as_text=True)
    assert "Inicie sesión." in page
    r = client.get("/no-such-page", headers=spanish({"Accept": "text/html"}))
    assert r.status_code == 404 and "Página no encontrada" in r.get_data(as_text=True)
    auth.login("viewer")
    r = client.get("/users", headers=spanish({"Accept": "text/html"}))
    assert r.status_code == 403 and "No permitido" in r.get_data(as_text=True)


def test_the_json_api_stays_english(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/contacts", headers=spanish({"Accept": "application/json"}))
    assert r.status_code == 401 and r.is_json
    r = client.get("/api/v1/no-such-thing", headers=spanish({"Accept": "application/json"}))
    assert r.status_code == 404 and "Página" not in r.get_data(as_text=True)


def test_dates_and_numbers_follow_the_language(app) -> None:  # type: ignore[no-untyped-def]
    from flask_babel import format_number

    from gateway.web.console.localtime import local, local_day

    when = datetime(2026, 3, 14, 6, 30)  # naive UTC; the console shows Malawi time (UTC+2)
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert local(when) == "2026-03-14 08:30 (Africa/Blantyre; 06:30 UTC)"
        assert format_number(12345) == "12,345" and local_day(when.date()) == "2026-03-14"
    with app.test_request_context("/", headers=spanish()):
        assert local(when) == "14 mar 2026, 8:30 (Africa/Blantyre; 06:30 UTC)"
        assert format_number(12345) == "12.345" and local_day(when.date()) == "14 mar 2026"


def test_form_errors_are_in_the_page_language(client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    """Our own validation messages and WTForms' built-in ones (its catalogue, through Flask-WTF)."""
    auth.login("admin")
    token = auth.csrf("/users")
    form = {"csrf_token": token, "email": "", "role": "viewer", "password": "short"}
    page = client.post("/users", data=form, headers=spanish()).get_data(as_text=True)
    errors = re.findall(r'<p class="flash error">([^<]*)</p>', page)
    assert errors == ["Este campo es obligatorio.", "La contraseña necesita al menos 10 caracteres."]
    page = client.post("/users", data=form, headers={"Accept-Language": "en"}).get_data(as_text=True)
    errors = re.findall(r'<p class="flash error">([^<]*)</p>', page)
    assert errors == ["This field is required.", "The password needs at least 10 characters."]


def test_a_schedules_problems_are_in_the_page_language(client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    """The shared schedule checks (English for the API and CLI) are said in the page's language on the console."""
    auth.login("organizer")
    token = auth.csrf("/schedules")
    form = {"csrf_token": token, "place": "Zomba", "service": "clinic", "starts_on": "2026-11-10",
            "ends_on": "2026-11-01", "check_at": "16:00", "sample_size": "5", "no_threshold": "3"}

    def problems(headers: dict[str, str]) -> list[str]:
        r = client.post("/schedules", data=form, headers=headers)
        assert r.status_code == 400
        return re.findall(r'<ul class="errors card" id="schedule-errors" role="alert"><li>([^<]*)</li>',
                          r.get_data(as_text=True))

    assert problems(spanish()) == ["Última fecha posible: es anterior a la primera fecha prevista"]
    assert problems({"Accept-Language": "en"}) == ["ends_on: is before starts_on"]
    form.update(ends_on="", sample_size="2", no_threshold="3")
    assert problems(spanish()) == [
        "Respuestas “no” que abren un caso: es mayor que la muestra (2): ninguna verificación podría alcanzarlo"]
    form.update(place="Narnia")
    assert problems(spanish()) == ["Lugar: &#39;Narnia&#39; no está en los nomencladores (flows/places): "
                                   "revise cómo está escrito"]
