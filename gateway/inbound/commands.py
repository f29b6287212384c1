"""`flask sms simulate`, `spool replay` and `flows check`: thin adapters over the inbound path and its flows."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from gateway import services
from gateway.channels.base import InboundSMS
from gateway.core.caserules import load_rules
from gateway.core.flowfile import FlowError, check_prompts, load_flows
from gateway.outbound import queues

sms_cli = AppGroup("sms", help="Run texts through the inbound path.")
spool_cli = AppGroup("spool", help="Inbound messages kept while the database was away.")
flows_cli = AppGroup("flows", help="Flow files in flows/.")


@sms_cli.command("simulate")
@click.option("--from", "sender", required=True, help="The supporter's number, e.g. +265991234567.")
@click.argument("text", nargs=-1, required=True)
def simulate(sender: str, text: tuple[str, ...]) -> None:
    """Run TEXT from NUMBER through the whole inbound path and print the replies."""
    svc = services()
    body = " ".join(text)
    received = svc.inbound.receive(InboundSMS("console", None, sender, None, body))
    if received is None:
        raise click.ClickException("the database is away: the text was kept in the spool")
    if received.contact_id is None:
        raise click.ClickException(f"{sender!r} is not a phone number; the text was kept, not handled")
    for reply in received.texts:
        click.echo(f"< {reply}")
    if not received.texts:
        click.echo("(no reply)")


@spool_cli.command("replay")
def spool_replay() -> None:
    """Store and handle the kept messages in arrival order (safe to run twice)."""
    svc = services()
    done = svc.inbound.replay()
    click.echo(f"{done.stored} stored, {done.duplicates} already stored, {done.statuses} status callbacks applied, "
               f"{done.rejected} set aside, "
               f"{done.left} left" + (" (database away)" if done.away else "")
               + (" (another process is replaying)" if done.busy else ""))
    if not svc.settings.redis_url and (done.stored or done.duplicates):
        queues.work_burst(svc.redis)  # the in-process queue is only ours
    if done.left:
        raise SystemExit(1)


@flows_cli.command("check")
def flows_check() -> None:
    """Validate every flow file; print each prompt's encoding and segments per language."""
    settings = services().settings
    directory = settings.flows_dir
    try:
        flow_set = load_flows(directory, default_language=settings.default_language)
        load_rules(directory / "cases.yaml")  # the case rules beside the flows (gateway/core/caserules.py)
    except FlowError as exc:
        for error in exc.errors:
            click.echo(error, err=True)
        raise click.ClickException(f"{len(exc.errors)} problem(s) in {directory}") from None
    checks = check_prompts(flow_set, settings.org_name)
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


def init_app(app: Flask) -> None:
    """Register `flask sms`, `flask spool` and `flask flows`."""
    for group in (sms_cli, spool_cli, flows_cli):
        app.cli.add_command(group)
