"""The brief as HTML (one Jinja template, print CSS for A4) and as PDF (WeasyPrint); charts are plain inline SVG.

Black-and-white first: the parts of a bar differ by fill pattern (solid, hatched, outlined, grey),
never by colour alone. Nothing is fetched: the CSS and the SVG are in the page.
"""
from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from gateway.core import brief as core
from gateway.evidence.figures import Brief, CaseFigures, PlaceFigures
from gateway.evidence.words import LANGUAGES, Words

MAX_SERVICES = 4  # delivery charts on the page
STATE_ORDER = ("overdue", "open", "resolved", "closed")
# (body class, cases listed, officials listed, quotes): a crowded month is set tighter until it fits one page.
DENSITIES = (("", 8, 6, 3), ("compact", 6, 5, 2), ("tight", 4, 3, 1))

_env = Environment(loader=PackageLoader("gateway.evidence", "templates"), autoescape=select_autoescape(),
                   trim_blocks=True, lstrip_blocks=True)

# How each outcome is drawn: (fill, stroke, dashed); "url(#…)" fills are the patterns in _DEFS.
STYLE = {core.DELIVERED: ("#000", "#000", False), core.PARTLY: ("url(#hatch-{id})", "#000", False),
         core.NOT_DELIVERED: ("#fff", "#000", False), core.NO_ANSWER: ("#bbb", "#777", False),
         core.UNCHECKED: ("#fff", "#777", True)}
_DEFS = ('<defs><pattern id="hatch-{id}" width="4" height="4" patternUnits="userSpaceOnUse" '
         'patternTransform="rotate(45)"><rect width="4" height="4" fill="#fff"/>'
         '<line x1="0" y1="0" x2="0" y2="4" stroke="#000" stroke-width="1.6"/></pattern></defs>')
LABEL_W, BAR_W, ROW_H, ROW_GAP, COUNT_W = 34, 230, 14, 4, 44


def css() -> str:
    """The brief's stylesheet (screen and print)."""
    return resources.files("gateway.evidence").joinpath("brief.css").read_text(encoding="utf-8")


def _cell(x: float, y: float, w: float, h: float, outcome: str, title: str, ids: str) -> str:
    fill, stroke, dashed = STYLE[outcome]
    dash = ' stroke-dasharray="2 1.5"' if dashed else ""
    return (f'<rect x="{x:.1f}" y="{y}" width="{max(w - 1.5, 1):.1f}" height="{h}" fill="{fill.format(id=ids)}" '
            f'stroke="{stroke}" stroke-width="0.8"{dash}><title>{escape(title)}</title></rect>')


def _text(x: float, y: float, text: str, bold: bool = False) -> str:
    # Presentation attributes, not CSS classes: WeasyPrint's SVG renderer and browsers read them alike.
    weight = ' font-weight="bold"' if bold else ""
    return f'<text x="{x}" y="{y}" font-size="10" font-family="DejaVu Sans, Arial, sans-serif"{weight}>{text}</text>'


def delivery_chart(record: core.ServiceRecord, most_due: int, w: Words, ids: str = "0") -> Markup:
    """One service's months as rows of due dates, each drawn by its outcome; 'came/due' at the end of the row."""
    unit = BAR_W / max(most_due, 1)
    rows = []
    for i, m in enumerate(record.months):
        y = i * (ROW_H + ROW_GAP)
        rows.append(_text(0, y + ROW_H - 3, str(escape(w.short_month(m.month)))))
        x = float(LABEL_W)
        for outcome in core.OUTCOMES:
            for _ in range(getattr(m, outcome)):
                rows.append(_cell(x, y, unit, ROW_H, outcome, f"{m.month}: {w(outcome)}", ids))
                x += unit
        rows.append(_text(LABEL_W + BAR_W + 6, y + ROW_H - 3, f"{m.delivered}/{m.due}" if m.due else "–", True))
    height = len(record.months) * (ROW_H + ROW_GAP)
    width = LABEL_W + BAR_W + COUNT_W
    title = escape(w.service(record.service))
    return Markup(f'<svg class="delivery" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                  f'role="img" aria-label="{title}" xmlns="http://www.w3.org/2000/svg">'
                  f'{_DEFS.format(id=ids)}<title>{title}</title>' + "".join(rows) + "</svg>")


def swatch(outcome: str, w: Words) -> Markup:
    """One key of the legend: the pattern a due date of this outcome is drawn with."""
    ids = f"key-{outcome}"
    return Markup(f'<svg class="swatch" viewBox="0 0 18 12" width="18" height="12" '
                  f'xmlns="http://www.w3.org/2000/svg">{_DEFS.format(id=ids)}'
                  + _cell(1, 1, 17.5, 10, outcome, w(outcome), ids) + "</svg>")


def context(brief: Brief, language: str, org_name: str, density: int = 0) -> dict[str, Any]:
    """What the template needs: the brief, its words, and the charts already drawn."""
    w = Words(language)
    name, cases, officials, quotes = DENSITIES[density]
    out: dict[str, Any] = {"b": brief, "f": brief.figures, "w": w, "lang": w.language, "org": org_name,
                           "core": core, "density": name, "max_cases": cases, "max_officials": officials,
                           "max_quotes": quotes,
                           "legend": [(swatch(o, w), w(o)) for o in core.OUTCOMES]}
    if isinstance(brief.figures, PlaceFigures):
        # Overdue first, then open, then resolved and closed; newest first within each.
        out["cases_listed"] = sorted(brief.figures.cases, key=lambda c: (
            STATE_ORDER.index(c.state), -c.opened_on.toordinal(), c.ref))
        shown = brief.figures.services[:MAX_SERVICES]
        most = max((m.due for s in shown for m in s.months), default=1)
        out["charts"] = [(s, delivery_chart(s, most, w, str(i))) for i, s in enumerate(shown)]
        out["month_first"] = core.parse_month(brief.figures.month)
    return out


def html(brief: Brief, language: str, org_name: str, stylesheet_url: str | None = None,
         nav: list[tuple[str, str]] | None = None, density: int = 0) -> str:
    """The brief as one HTML page; its CSS inline (WeasyPrint), or linked when a URL is given (the console's CSP)."""
    if language not in LANGUAGES:
        raise core.BadInput(f"lang {language[:10]!r}: the brief is written in {' or '.join(LANGUAGES)}")
    template = "brief_case.html" if isinstance(brief.figures, CaseFigures) else "brief.html"
    return _env.get_template(template).render(**context(brief, language, org_name, density),
                                              stylesheet_url=stylesheet_url, nav=nav or [],
                                              inline_css=None if stylesheet_url else Markup(css()))


def pdf(brief: Brief, language: str, org_name: str) -> bytes:
    """The brief as a PDF (A4), made by WeasyPrint from the same HTML."""
    # Before the import, which already parses its own stylesheets: progress lines tell an operator nothing.
    for name in ("weasyprint", "weasyprint.progress", "fontTools"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from weasyprint import HTML  # imported here: it loads Pango and fonts, which only the PDF needs

    for density in range(len(DENSITIES)):
        document = HTML(string=html(brief, language, org_name, density=density), base_url=None).render()
        if len(document.pages) == 1:
            break
    # The tightest setting is kept even if it runs over: a second page beats a figure left out.
    return document.write_pdf(pdf_identifier=brief.fingerprint.encode(), custom_metadata=True)  # type: ignore[no-any-return]
