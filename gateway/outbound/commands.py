"""`flask broadcast send/status/cancel`, `outbox reconcile` and `worker`: thin adapters over the outbox."""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from gateway import embedded as lock
from gateway import logs, services
from gateway.channels import sender_name
from gateway.core.places import match_place
from gateway.models import Broadcast
from gateway.outbound import broadcasts, jobs, queues, terminal

broadcast_cli = AppGroup("broadcast", help="Action alerts to segments of supporters.")
outbox_cli = AppGroup("outbox", help="The queue of outgoing messages.")


def embedded() -> bool:
    """No REDIS_URL: jobs live in this process, so the command runs them itself."""
    return not services().settings.redis_url


@broadcast_cli.command("send")
@click.option("--text", required=True, help="The alert in the default language; {name} and {place} are filled in.")
@click.option("--translation", "translations", multiple=True, metavar="LANG=TEXT",
              help="The alert in another language, e.g. ny=\"...\"; repeatable.")
@click.option("--language", help="Only supporters who speak this language (en, ny, es).")
@click.option("--place", help="Only supporters in this place (a district or department).")
@click.option("--tag", help="Only supporters with this tag.")
@click.option("--reply-keyword", help="Replies with this word (e.g. YES) are counted as pledges.")
@click.option("--urgent", is_flag=True, help="Send during quiet hours too.")
@click.option("--at", "send_at", type=click.DateTime(), help="Send at this UTC time instead of now.")
@click.option("--preview", "only_preview", is_flag=True, help="Show audience, segments and cost; send nothing.")
def broadcast_send(text: str, translations: tuple[str, ...], language: str | None, place: str | None,
                   tag: str | None, reply_keyword: str | None, urgent: bool, send_at: datetime | None,
                   only_preview: bool) -> None:
    """Launch an alert; prints its id."""
    svc = services()
    settings = svc.settings
    texts = {settings.default_language: text}
    for item in translations:
        lang, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected LANG=TEXT", param_hint="--translation")
        texts[lang.strip()] = value
    if place:
        found = match_place(place, svc.flows.gazetteers.values(), settings.default_country)
        if found is None:
            raise click.BadParameter(f"{place!r} is not in the gazetteers in flows/places/", param_hint="--place")
        place = found.name
    with svc.sessions() as session:
        try:
            b = broadcasts.create(session, texts, default_language=settings.default_language,
                                  place=place, language=language, tag=tag, reply_keyword=reply_keyword,
                                  urgent=urgent, send_at=send_at, created_by="cli")
        except broadcasts.BroadcastError as exc:
            raise click.ClickException(str(exc)) from None
        p = broadcasts.preview(session, b, settings.sms_prices)
        for t in p.texts:
            click.echo(f"{t.language}: {t.recipients} recipients, {t.encoding}, {t.segments} segment(s)"
                       + (f"; GSM-7 version: {t.suggestion_segments} segment(s)" if t.suggestion else ""), err=True)
        click.echo(f"{p.recipients} recipients, {p.total_segments} segments, estimated cost {p.estimated_cost}",
                   err=True)
        if only_preview:
            session.rollback()
            return
        launched = broadcasts.launch_and_enqueue(session, b, channel=svc.provider.name, sender=sender_name(),
                                                 redis=svc.redis)
    if not launched.enqueued:
        click.echo("The queue could not be reached; the reconciler sends the messages when it is back.", err=True)
    click.echo(launched.broadcast_id)
    if embedded():
        # Nobody else can see this process's in-memory queue: hand the rows to the running server,
        # or send them here with a progress bar.
        send_here_or_hand_over(launched.broadcast_id, later=send_at is not None)


@broadcast_cli.command("resume")
@click.argument("broadcast_id", type=int)
def broadcast_resume(broadcast_id: int) -> None:
    """Send what is left of a broadcast (after Ctrl-C or a crash); nothing is sent twice."""
    svc = services()
    with svc.sessions() as session:
        if session.get(Broadcast, broadcast_id) is None:
            raise click.ClickException(f"no broadcast {broadcast_id}")
    if embedded():
        send_here_or_hand_over(broadcast_id, settle=True)
        return
    # With Redis the workers send: put its queued rows on the queue (a row already in a job is claimed once).
    with svc.sessions() as session:
        ok = broadcasts.enqueue(session, broadcast_id, svc.redis)
    click.echo(f"broadcast {broadcast_id}: " + ("its waiting messages are queued for the workers" if ok else
                                                 "the queue could not be reached; the reconciler sends them"),
               err=True)


def send_here_or_hand_over(broadcast_id: int, *, later: bool = False, settle: bool = False) -> None:
    """Embedded default: the server sends when one runs (nudged); else this process, with a progress bar."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    instance = services().settings.instance_path
    try:
        took = lock.hold(instance, f"flask broadcast {broadcast_id}")
    except lock.ServerBusy:
        lock.nudge(instance)  # its rows are queued in the database; the server enqueues them now
        who = lock.holder(instance) or {}
        click.echo(f"The server (process {who.get('pid', '?')}) sends broadcast {broadcast_id}; follow it with: "
                   f"flask --app app broadcast status {broadcast_id}", err=True)
        return
    try:
        if settle:
            done = terminal.settle_orphans(app)  # left `sending` by an interrupted run: ask the provider
            if done.settled_sent or done.requeued:
                click.echo(f"{done.settled_sent} message(s) the provider had taken marked sent, "
                           f"{done.requeued} to send again", err=True)
        if later:
            click.echo(f"broadcast {broadcast_id} is held until its send time: the server sends it then "
                       "(make run), or run `broadcast resume` after it", err=True)
            return
        click.echo(terminal.report(terminal.send(app, broadcast_id), broadcast_id), err=True)
    finally:
        if took:
            lock.release(instance)


@broadcast_cli.command("status")
@click.argument("broadcast_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def broadcast_status(broadcast_id: int, as_json: bool) -> None:
    """Counts by status, and pledges."""
    with services().sessions() as session:
        try:
            p = broadcasts.progress(session, broadcast_id)
        except broadcasts.BroadcastError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(p))
        return
    click.echo(f"broadcast {p['id']}: {p['status']}, {p['recipients']} recipients")
    for status, n in p["counts"].items():
        if n:
            click.echo(f"  {status}: {n}")
    click.echo(f"  pledges: {p['pledges']}" + (f" (reply {p['reply_keyword']})" if p["reply_keyword"] else ""))
    for place, n in sorted(p["pledges_by_place"].items()):
        click.echo(f"    {place}: {n}")


@broadcast_cli.command("cancel")
@click.argument("broadcast_id", type=int)
def broadcast_cancel(broadcast_id: int) -> None:
    """Stop the messages of a broadcast that have not been sent yet."""
    with services().sessions() as session, session.begin():
        b = session.get(Broadcast, broadcast_id)
        if b is None:
            raise click.ClickException(f"no broadcast {broadcast_id}")
        n = broadcasts.cancel(session, b)
    click.echo(f"broadcast {broadcast_id} cancelled; {n} message(s) will not be sent")


@outbox_cli.command("reconcile")
def outbox_reconcile() -> None:
    """Re-enqueue messages left queued, settle those left sending (asking the provider)."""
    result = jobs.reconcile(force=True)
    click.echo(", ".join(f"{k}: {v}" for k, v in result.items()))
    if embedded() and result["jobs"]:
        instance = services().settings.instance_path
        try:
            took = lock.hold(instance, "flask outbox reconcile")
        except lock.ServerBusy:
            lock.nudge(instance)  # the running server sends them; two senders would double the rate
            return
        try:
            queues.work_burst(services().redis)
        finally:
            if took:
                lock.release(instance)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Quit when the queues are empty.")
@click.option("--reconcile-every", default=60, show_default=True, help="Seconds between reconciler runs.")
def worker(burst: bool, reconcile_every: int) -> None:
    """An RQ worker on the gateway's queues (replies first, then bulk), with the reconciler."""
    connection = services().redis
    if embedded():
        click.echo("REDIS_URL is not set: this worker only sees jobs of its own process", err=True)
        try:  # and it would send beside the server, at the same rate again
            lock.hold(services().settings.instance_path, "flask worker")
        except lock.ServerBusy as exc:
            raise click.ClickException(str(exc)) from None

    def schedule_reconcile() -> None:
        q = queues.get_queue(connection, queues.REPLIES)
        while True:
            slot = int(time.time() // reconcile_every)
            # One job id per time slot: several workers enqueue it, it runs once.
            if q.fetch_job(f"reconcile-{slot}") is None:
                q.enqueue(queues.RECONCILE, job_id=f"reconcile-{slot}", result_ttl=reconcile_every * 2)
            if q.fetch_job(f"cases-tick-{slot}") is None:  # case deadlines, on the same beat
                q.enqueue(queues.CASES_TICK, job_id=f"cases-tick-{slot}", result_ttl=reconcile_every * 2)
            time.sleep(reconcile_every)

    if not burst:
        threading.Thread(target=schedule_reconcile, daemon=True).start()
    w = SimpleWorker([queues.get_queue(connection, queues.REPLIES), queues.get_queue(connection, queues.BULK)],
                     connection=connection, serializer=JSONSerializer)
    # RQ's own lines follow LOG_LEVEL too.
    w.work(burst=burst, with_scheduler=True, logging_level=logging.getLevelName(logs.level()))


def init_app(app: Flask) -> None:
    """Register `flask broadcast`, `flask outbox` and `flask worker`."""
    app.cli.add_command(broadcast_cli)
    app.cli.add_command(outbox_cli)
    app.cli.add_command(worker)
