"""`flask contacts`, `reports export`, `users` and `privacy`: thin adapters over the people modules."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from gateway import services
from gateway.core.flowfile import parse_duration
from gateway.models import User, utcnow
from gateway.people import accounts, audit, contacts, csvio, officials, privacy

contacts_cli = AppGroup("contacts", help="Supporters as CSV.")
reports_cli = AppGroup("reports", help="Service-delivery reports.")
users_cli = AppGroup("users", help="Organizer accounts.")
privacy_cli = AppGroup("privacy", help="Retention of what supporters wrote.")
officials_cli = AppGroup("officials", help="Decision makers who receive cases.")


def _read_sheet(file: Path) -> str:
    """A CSV file's text (a spreadsheet's byte-order mark dropped); a file that is not UTF-8 is refused."""
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise click.ClickException(f"{file}: not UTF-8 text; save the sheet as 'CSV UTF-8'") from None


@officials_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def officials_import(file: Path) -> None:
    """Import FILE.csv (number,name,role,language,places,services,level); bad lines are reported by number."""
    svc = services()
    text = _read_sheet(file)
    with svc.sessions() as session, session.begin():
        done, errors = officials.import_csv(session, text, default_country=svc.settings.default_country,
                                            gazetteers=svc.flows.gazetteers.values(), languages=svc.flows.languages)
        audit.record(session, "cli", "officials.import", imported=done, errors=len(errors))
    for error in errors:
        click.echo(f"{file}: {error}", err=True)
    click.echo(f"{done} official(s) imported, {len(errors)} line(s) with errors")
    if errors:
        sys.exit(1)


@contacts_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def contacts_import(file: Path) -> None:
    """Import FILE.csv (number, name, language, place, tags); bad lines are reported, good ones kept."""
    svc = services()
    text = _read_sheet(file)
    rows, errors = csvio.parse_contacts(text, svc.settings.default_country,
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
            raise click.ClickException(str(exc)) from None
        audit.record(session, "cli", "user.create", email=user.email, role=role)
    click.echo(f"{user.email} can log in as {role}")


@users_cli.command("token")
@click.option("--email", required=True)
def users_token(email: str) -> None:
    """Issue a new API token for an account (the old one stops working)."""
    with services().sessions() as session, session.begin():
        user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
        if user is None:
            raise click.ClickException(f"no account {email}")
        token = accounts.new_api_token(user)
        audit.record(session, "cli", "user.token", email=user.email)
    click.echo(token)


@privacy_cli.command("purge")
@click.option("--older-than", "older_than", required=True, help="Age like 90d, 12h or 30m.")
def privacy_purge(older_than: str) -> None:
    """Remove message bodies (and closed conversations' answers) older than the given age."""
    age = parse_duration(older_than)
    if age is None:
        raise click.BadParameter("expected an age like 90d, 12h or 30m", param_hint="--older-than")
    with services().sessions() as session, session.begin():
        done = privacy.purge(session, utcnow() - age)
        audit.record(session, "cli", "privacy.purge", older_than=older_than, messages=done.messages,
                     conversations=done.conversations)
    click.echo(f"{done.messages} message bodies and {done.conversations} conversations' answers removed")


@privacy_cli.command("rekey")
def privacy_rekey() -> None:
    """Move every phone number to the newest key of NUMBERS_KEY (after adding a key in front)."""
    with services().sessions() as session, session.begin():
        moved = contacts.rekey(session)
        audit.record(session, "cli", "privacy.rekey", moved=moved)
    click.echo(f"{moved} numbers moved to the newest key; the older keys can now be removed from NUMBERS_KEY")


def init_app(app: Flask) -> None:
    """Register `flask contacts`, `flask reports`, `flask users`, `flask privacy` and `flask officials`."""
    for group in (contacts_cli, reports_cli, users_cli, privacy_cli, officials_cli):
        app.cli.add_command(group)
