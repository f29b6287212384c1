"""`flask --app app ...` commands: thin adapters around the inbound path, flows and CSV."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app
from flask.cli import AppGroup

from gateway import services
from gateway.people import accounts
from gateway.people import audit
from gateway.people import csvio
from gateway.inbound import receive as inbound
from gateway.settings import ROOT
from gateway.core.flowfile import FlowError, check_prompts, load_flows
from gateway.models import utcnow
from gateway.channels.base import InboundSMS

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")
sms_cli = AppGroup("sms", help="Run texts through the inbound path.")
flows_cli = AppGroup("flows", help="Flow files in flows/.")
contacts_cli = AppGroup("contacts", help="Supporters as CSV.")
reports_cli = AppGroup("reports", help="Service-delivery reports.")
users_cli = AppGroup("users", help="Organizer accounts.")
privacy_cli = AppGroup("privacy", help="Retention of what supporters wrote.")


@privacy_cli.command("purge")
@click.option("--older-than", "older_than", required=True, help="Age like 90d, 12h or 30m.")
def privacy_purge(older_than: str) -> None:
    """Remove message bodies (and closed conversations' answers) older than the given age."""
    from gateway.core.flowfile import parse_duration
    from gateway.people.privacy import purge

    age = parse_duration(older_than)
    if age is None:
        raise click.BadParameter("expected an age like 90d, 12h or 30m", param_hint="--older-than")
    with services().sessions() as session, session.begin():
        done = purge(session, utcnow() - age)
        audit.record(session, "cli", "privacy.purge", older_than=older_than, messages=done.messages,
                     conversations=done.conversations)
    click.echo(f"{done.messages} message bodies and {done.conversations} conversations' answers removed")


@privacy_cli.command("rekey")
def privacy_rekey() -> None:
    """Move every phone number to the newest key of NUMBERS_KEY (after adding a key in front)."""
    from gateway.people import contacts

    with services().sessions() as session, session.begin():
        moved = contacts.rekey(session)
        audit.record(session, "cli", "privacy.rekey", moved=moved)
    click.echo(f"{moved} numbers moved to the newest key; the older keys can now be removed from NUMBERS_KEY")


def alembic_config(url: str, numbers_key: str | None = None) -> AlembicConfig:
    """Alembic settings pointing at migrations/ and the given database (and the number keys)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = url
    cfg.attributes["numbers_key"] = numbers_key  # migration 0004 seals plain numbers with it
    return cfg


def _app_alembic() -> AlembicConfig:
    return alembic_config(current_app.config["DATABASE_URL"], current_app.config["NUMBERS_KEY"])


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    command.upgrade(_app_alembic(), revision)
    click.echo(f"database at {revision}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ('base' for an empty database)."""
    command.downgrade(_app_alembic(), revision)


@sms_cli.command("simulate")
@click.option("--from", "sender", required=True, help="The supporter's number, e.g. +265991234567.")
@click.argument("text", nargs=-1, required=True)
def simulate(sender: str, text: tuple[str, ...]) -> None:
    """Run TEXT from NUMBER through the whole inbound path and print the replies."""
    svc = services()
    body = " ".join(text)
    received = inbound.receive(svc.sessions, InboundSMS("console", None, sender, None, body),
                               current_app.config["DEFAULT_COUNTRY"], svc.flows, current_app.config["ORG_NAME"])
    if received.contact_id is None:
        raise click.ClickException(f"{sender!r} is not a phone number; the text was kept, not handled")
    for text in received.texts:
        click.echo(f"< {text}")
    if not received.texts:
        click.echo("(no reply)")


@flows_cli.command("check")
def flows_check() -> None:
    """Validate every flow file; print each prompt's encoding and segments per language."""
    directory = Path(current_app.config["FLOWS_DIR"])
    try:
        flow_set = load_flows(directory, default_language=current_app.config["DEFAULT_LANGUAGE"])
    except FlowError as exc:
        for error in exc.errors:
            click.echo(error, err=True)
        raise click.ClickException(f"{len(exc.errors)} problem(s) in {directory}")
    checks = check_prompts(flow_set, current_app.config["ORG_NAME"])
    for c in checks:
        mark = "ok" if c.ok else f"OVER {c.allowed} segment(s)"
        click.echo(f"{c.where}: {c.encoding} {c.segments} seg {c.characters} chars {mark}"
                   + (" (draft)" if c.draft else ""))
    drafts = sorted({(f.path, lang) for f in flow_set.flows.values() for lang in f.drafts}
                    | {(flow_set.system.path, lang) for lang in flow_set.system.drafts})
    for path, lang in drafts:
        click.echo(f"draft: {path}: '{lang}' not yet checked by a native speaker")
    over = [c for c in checks if not c.ok]
    if over:
        raise click.ClickException(f"{len(over)} prompt(s) over their segment limit; shorten them or "
                                   "set allow_segments on the step")
    click.echo(f"{len(flow_set.flows)} flows, {len(checks)} prompts ok")


@contacts_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def contacts_import(file: Path) -> None:
    """Import FILE.csv (number, name, language, place, tags); bad lines are reported, good ones kept."""
    svc = services()
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise click.ClickException(f"{file}: not UTF-8 text; save the sheet as 'CSV UTF-8'")
    rows, errors = csvio.parse_contacts(text, current_app.config["DEFAULT_COUNTRY"],
                                        svc.flows.gazetteers.values(), svc.flows.languages)
    with svc.sessions() as session, session.begin():
        summary = csvio.apply_contacts(session, rows, utcnow())
    for error in errors:
        click.echo(f"{file}: {error}", err=True)
    click.echo(f"{summary.created} created, {summary.updated} updated "
               f"({summary.kept_stopped} stay stopped), {len(errors)} line(s) with errors")
    if errors:
        sys.exit(1)


@contacts_cli.command("export")
def contacts_export() -> None:
    """All contacts as CSV on stdout, with their status."""
    with services().sessions() as session:
        csvio.export_contacts(session, sys.stdout)


@reports_cli.command("export")
def reports_export() -> None:
    """All reports as CSV on stdout (no phone numbers)."""
    with services().sessions() as session, session.begin():
        csvio.export_reports(session, sys.stdout)
        audit.record(session, "cli", "export.reports", filter={})


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(accounts.ROLES), required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Asked for when not given.")
def users_create(email: str, role: str, password: str) -> None:
    """An organizer account; ROLE is admin, organizer or viewer."""
    with services().sessions() as session, session.begin():
        try:
            user = accounts.create_user(session, email, role, password)
        except accounts.AccountError as exc:
            raise click.ClickException(str(exc))
        audit.record(session, "cli", "user.create", email=user.email, role=role)
    click.echo(f"{user.email} can log in as {role}")


@users_cli.command("token")
@click.option("--email", required=True)
def users_token(email: str) -> None:
    """Issue a new API token for an account (the old one stops working)."""
    from sqlalchemy import select

    from gateway.models import User

    with services().sessions() as session, session.begin():
        user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
        if user is None:
            raise click.ClickException(f"no account {email}")
        token = accounts.new_api_token(user)
        audit.record(session, "cli", "user.token", email=user.email)
    click.echo(token)


def init_app(app: Flask) -> None:
    """Register the command groups."""
    from gateway import cli_outbound

    for group in (db_cli, sms_cli, flows_cli, contacts_cli, reports_cli, users_cli, privacy_cli):
        app.cli.add_command(group)
    cli_outbound.init_app(app)
