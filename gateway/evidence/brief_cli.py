"""`flask brief --place P --month YYYY-MM --out FILE.pdf [--lang es] [--case REF]`: the one-page brief."""
from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from gateway import services
from gateway.core.brief import BadInput
from gateway.evidence import briefs, render


@click.command("brief")
@with_appcontext
@click.option("--place", default=None, help="The district, as the gazetteers spell it (e.g. Zomba).")
@click.option("--month", default=None, help="The month, YYYY-MM (e.g. 2026-11).")
@click.option("--case", "case_ref", default=None, help="A case's reference: the brief of that one case instead.")
@click.option("--lang", default="en", show_default=True, help="en or es.")
@click.option("--format", "fmt", type=click.Choice(briefs.FORMATS), default=None,
              help="pdf, html or json (default: from --out's suffix, else pdf).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write; - for standard output.")
def brief_command(place: str | None, month: str | None, case_ref: str | None, lang: str, fmt: str | None,
                  out: Path) -> None:
    """Write the one-page evidence brief of a place for a month (or of one case) as PDF, HTML or JSON."""
    svc = services()
    fmt = fmt or (out.suffix.lstrip(".").lower() if out.suffix.lstrip(".").lower() in briefs.FORMATS else "pdf")
    try:
        language = briefs.check_language(lang)
        with svc.sessions() as session, session.begin():
            if case_ref:
                made = briefs.for_case(session, case_ref)
            elif place and month:
                made = briefs.for_place(session, place, month, list(svc.flows.gazetteers.values()),
                                        svc.settings.default_country)
            else:
                raise BadInput("give --place and --month (e.g. --place Zomba --month 2026-11), or --case REF")
            briefs.record_export(session, "cli", made, fmt, language, via="cli")
    except BadInput as exc:
        raise click.UsageError(str(exc)) from None
    org = svc.settings.org_name
    if fmt == "json":
        data = (json.dumps(made.as_json(), ensure_ascii=False, indent=2) + "\n").encode()
    elif fmt == "html":
        data = render.html(made, language, org).encode()
    else:
        data = render.pdf(made, language, org)
    if str(out) == "-":
        click.get_binary_stream("stdout").write(data)  # type: ignore[operator]
    else:
        out.write_bytes(data)
        click.echo(f"{out}: the brief ({fmt}, {language}), fingerprint {made.fingerprint}", err=True)


def init_app(app: Flask) -> None:
    """Register `flask brief`."""
    app.cli.add_command(brief_command)
