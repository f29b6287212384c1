"""The SMS mobilization gateway: create_app() builds the Flask application and wires its parts.

The wiring is all here: the channels, the inbound path (`Inbound`), the outbox, the hooks that
run before requests (spool replay, the embedded worker) and logging.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import click
from flask import Flask, current_app
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import channels as channels_module
from gateway import embedded, logs
from gateway.channels.base import Provider
from gateway.channels.twilio import TwilioProvider
from gateway.core.caserules import CaseRules, load_rules
from gateway.core.flowfile import FlowError, FlowSet, load_flows
from gateway.core.places import find_place
from gateway.core.vault import NumberVault
from gateway.db import make_engine, make_session_factory
from gateway.inbound import Inbound, deferred, status
from gateway.inbound.spool import Spool
from gateway.outbound import jobs, queues
from gateway.outbound.outbox import Outbox
from gateway.outbound.pacing import Pacer
from gateway.settings import Settings, numbers_keys_for, secret_key_for

logger = logging.getLogger(__name__)


@dataclass
class Services:
    """What the request handlers and commands share: database, flows, provider."""

    settings: Settings  # every setting, parsed once at start (app.config keeps Flask's own keys)
    engine: Engine
    sessions: sessionmaker[Session]
    flow_set: FlowSet | None
    flow_error: FlowError | None
    provider: Provider  # the default channel's (SMS_PROVIDER)
    twilio: TwilioProvider | None  # when credentials are set: it checks webhook signatures
    redis: Any
    channels: channels_module.Channels  # every configured way out and in
    inbound: Inbound  # every way a text comes in: svc.inbound.receive(sms, inline=...)
    outbox: Callable[[], Outbox] = field(repr=False)  # the outbox as configured now (jobs build one per run)
    case_rules: CaseRules = field(default_factory=CaseRules)  # flows/cases.yaml, loaded with the flows

    @property
    def flows(self) -> FlowSet:
        """The loaded flows; a broken flow file stops here with every problem listed."""
        if self.flow_set is None:
            raise click.ClickException(f"flow files are broken:\n{self.flow_error}")
        return self.flow_set


def services() -> Services:
    """The current application's services."""
    return current_app.extensions["gateway"]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment; `config` overrides settings (the test seam)."""
    app = Flask("gateway")  # the package, as before create_app moved here: its name and root path
    settings = Settings.from_env(overrides=config)  # refuses a setting that cannot work, naming it
    logs.configure(settings.log_level)  # first, so what follows is logged the same way
    # Flask's own keys (and the overrides tests pass) go to app.config; the gateway reads `settings`.
    app.config.update(settings.as_flask_config())
    app.config["SECRET_KEY"] = secret_key_for(settings)
    numbers_keys = numbers_keys_for(settings)
    app.config["NUMBERS_KEY"] = ",".join(numbers_keys)  # what `db upgrade` hands migrations
    # Uploads (a supporters CSV) up to 16 MB; webhooks are held to far less (channels/hooks/base.py).
    app.config["MAX_CONTENT_LENGTH"] = app.config.get("MAX_CONTENT_LENGTH") or 16 * 1024 * 1024
    flow_set, flow_error, case_rules = None, None, CaseRules()
    try:
        loaded = load_flows(settings.flows_dir, default_language=settings.default_language)
        case_rules = load_rules(settings.flows_dir / "cases.yaml")
        flow_set = loaded  # only when the case rules are sound too: svc.flows then names their problems
    except FlowError as exc:
        # Under the flask command line, keep going so `flows check` can list the problems;
        # a web server must not start with broken flows.
        if click.get_current_context(silent=True) is None:
            raise
        flow_error = exc
    # The statement timeout is for serving: a hung database fails a webhook in seconds (the spool
    # keeps its text). Commands and workers (exports, purge, the brief, the reconciler, jobs) have
    # no such limit: their long statements are the work itself (RQ's job timeout still bounds a job).
    statement_timeout = settings.db_statement_timeout_ms if embedded.serving_now() else 0
    engine = make_engine(settings.database_url, statement_timeout_ms=statement_timeout,
                         lock_timeout_ms=settings.db_lock_timeout_ms)
    vault = NumberVault.from_keys(numbers_keys)
    redis = queues.connect(settings.redis_url)
    sessions = make_session_factory(engine, vault, redis)
    channels = channels_module.build(settings, redis)

    def flows() -> FlowSet:
        return svc.flows  # the loaded flows, or the error naming what is broken in the files

    inbound = Inbound(sessions, flows, settings.org_name, settings.default_country,
                      Spool(settings.spool_dir, vault), partial(_enqueue_replies, redis), redis,
                      deferred.Writer(sessions, partial(deferred.enqueue, redis)))
    twilio = channels.providers.get("twilio")
    svc = Services(settings, engine, sessions, flow_set, flow_error, channels.providers[settings.sms_provider],
                   twilio if isinstance(twilio, TwilioProvider) else None, redis, channels, inbound,
                   partial(build_outbox, app), case_rules)
    app.extensions["gateway"] = svc
    # Sessions carry the services, so code outside a request or command (the inbound path, the
    # cases' texts) reaches the flows, settings and queue the app was built with.
    sessions.kw.setdefault("info", {})["services"] = svc

    # The parts below import `services` from this package, so they are imported once it is whole.
    from gateway import backup, db, limits
    from gateway.cases import commands as cases_commands
    from gateway.channels.hooks import ByPath, Webhooks
    from gateway.evidence import brief_cli
    from gateway.evidence import commands as evidence_commands
    from gateway.inbound import commands as inbound_commands
    from gateway.outbound import commands as outbound_commands
    from gateway.people import commands as people_commands
    from gateway.web import api, console, health, metrics

    limits.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    console.init_app(app)
    api.init_app(app)
    db.init_app(app)  # the session teardown and `flask db`; each package registers its own commands
    backup.init_app(app)
    inbound_commands.init_app(app)
    outbound_commands.init_app(app)
    people_commands.init_app(app)
    cases_commands.init_app(app)
    brief_cli.init_app(app)
    evidence_commands.init_app(app)
    # Before every request, webhooks included: replay texts kept in the spool while the database
    # was away (at most REQUEST_BUDGET seconds, only when some are kept).
    before: list[Callable[[], None]] = [_replay_spool]
    if not settings.redis_url and app.config.get("EMBEDDED_WORKER", not app.config.get("TESTING")):
        # No Redis: the web process runs the RQ jobs itself, from its first request (commands do not).
        # Only one process may (gateway/embedded.py): a second server stops here, saying why.
        if embedded.serving_now():
            embedded.claim_for_server(app)
        before.append(_embedded_worker_starter(app))
    for fn in before:
        app.before_request(fn)
    # The providers' webhooks (/sms/...) are an app of their own, without the console's and the API's hooks.
    # (db.init_app's teardown_appcontext closes a webhook's session: Webhooks pushes an app context each time.)
    hooks = app.extensions["webhooks"] = Webhooks(app, before)
    app.wsgi_app = ByPath(app.wsgi_app, hooks)  # type: ignore[method-assign]
    if settings.proxy_fix_hops:  # outermost: the webhooks' signed URL is the one the proxy was asked for
        hops = settings.proxy_fix_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]
    return app


def _replay_spool() -> None:
    """Replay the spool when texts are kept (Inbound.replay_on_request); never fails the request."""
    services().inbound.replay_on_request()


def _enqueue_replies(redis: Any, ids: list[int]) -> None:
    """Replies' ids onto the reply queue, which workers empty before any broadcast."""
    queues.enqueue_ids(redis, ids, name=queues.REPLIES)


def _embedded_worker_starter(app: Flask) -> Callable[[], None]:
    """A before_request hook that starts the embedded worker (with the reconciler) once."""
    lock = threading.Lock()
    started: list[object] = []

    def start_embedded_worker() -> None:
        if not started:
            with lock:
                if not started:
                    instance = services().settings.instance_path
                    embedded.hold(instance, "web server")  # ServerBusy (a 500, logged) while another sends
                    started.append(queues.start_embedded_worker(app, jobs.reconcile,
                                                                nudged_at=partial(embedded.nudged_at, instance)))

    return start_embedded_worker


def build_outbox(app: Flask) -> Outbox:
    """The outbox as configured for this app now (svc.settings is read each time: tests replace it)."""
    svc: Services = app.extensions["gateway"]
    settings = svc.settings
    gazetteers = list(svc.flows.gazetteers.values())
    by_country = {g.country: g.timezone for g in gazetteers}

    def timezone_for(place: str | None, country: str | None) -> str:
        found = find_place(place, gazetteers) if place else None
        if found:
            return found.timezone
        return by_country.get(country or "") or by_country.get(settings.default_country) or "UTC"

    def schedule(ids: list[int], when: datetime) -> None:
        queues.enqueue_ids(svc.redis, ids, at=when + timedelta(seconds=1))

    base = settings.public_base_url
    chans = svc.channels
    twilio_sends = svc.provider.name == "twilio" or "twilio" in chans.providers
    # Each channel (a phone, a sender id) has its own rate from the routing file; SENDER_RATES wins.
    rates = {**chans.rates, **settings.sender_rates}
    return Outbox(
        sessions=svc.sessions, provider=svc.provider,
        pacer=Pacer(svc.redis, settings.sender_rate, rates),
        timezone_for=timezone_for, quiet=settings.quiet_hours,
        status_callback=f"{base}/sms/twilio/status" if base and twilio_sends else None,
        schedule=schedule, early_status=partial(status.early_statuses, svc.redis), channels=chans,
        concurrency=settings.send_concurrency)
