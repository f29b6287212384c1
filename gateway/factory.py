"""The SMS mobilization gateway: create_app() builds the Flask application."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import click
from flask import Flask, current_app
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway.settings import (check_settings, database_url, load_settings, numbers_keys_for, resolve_defaults, secret_key_for)
from gateway.db import make_engine, make_session_factory
from gateway.core.flowfile import FlowError, FlowSet, load_flows
from gateway.core.vault import NumberVault
from gateway.channels.base import Provider

logger = logging.getLogger(__name__)


@dataclass
class Services:
    """What the request handlers and commands share: database, flows, provider."""

    engine: Engine
    sessions: sessionmaker[Session]
    flow_set: FlowSet | None
    flow_error: FlowError | None
    provider: Provider
    twilio: Any | None  # TwilioProvider when credentials are set: it checks webhook signatures
    redis: Any = field(default=None)
    channels: Any = field(default=None)  # gateway.channels.Channels: every configured way out and in

    @property
    def flows(self) -> FlowSet:
        """The loaded flows; a broken flow file stops here with every problem listed."""
        if self.flow_set is None:
            raise click.ClickException(f"flow files are broken:\n{self.flow_error}")
        return self.flow_set


def services() -> Services:
    """The current application's services."""
    return current_app.extensions["gateway"]


def _providers(settings: dict[str, Any]) -> tuple[Provider, Any | None]:
    from gateway.channels.console import ConsoleProvider
    from gateway.channels.twilio import TwilioProvider

    twilio = None
    if settings["TWILIO_ACCOUNT_SID"] and settings["TWILIO_AUTH_TOKEN"]:
        twilio = TwilioProvider(settings["TWILIO_ACCOUNT_SID"], settings["TWILIO_AUTH_TOKEN"],
                                from_number=settings["TWILIO_FROM_NUMBER"],
                                messaging_service_sid=settings["TWILIO_MESSAGING_SERVICE_SID"],
                                api_base_url=settings["TWILIO_API_BASE_URL"],
                                timeout=float(settings.get("TWILIO_TIMEOUT", 10)))
    provider = twilio if settings["SMS_PROVIDER"] == "twilio" else ConsoleProvider()
    return provider, twilio  # create_app swaps in the channel's provider for the local channels


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment; `config` overrides settings (the test seam)."""
    app = Flask("gateway")  # the package, as before the factory moved out of gateway/__init__.py
    settings = load_settings()
    settings.update(config or {})
    settings["DATABASE_URL"] = database_url(settings["DATABASE_URL"])
    resolve_defaults(settings)
    check_settings(settings)
    app.config.update(settings)
    app.config["SECRET_KEY"] = secret_key_for(settings)
    app.config["NUMBERS_KEY"] = ",".join(numbers_keys_for(settings))  # what `db upgrade` hands migrations
    # Uploads (a supporters CSV) up to 16 MB; webhooks are held to far less in webhooks.py.
    app.config["MAX_CONTENT_LENGTH"] = settings.get("MAX_CONTENT_LENGTH") or 16 * 1024 * 1024
    if settings["PROXY_FIX_HOPS"]:
        hops = settings["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]

    flow_set, flow_error = None, None
    try:
        flow_set = load_flows(settings["FLOWS_DIR"], default_language=settings["DEFAULT_LANGUAGE"])
    except FlowError as exc:
        # Under the flask command line, keep going so `flows check` can list the problems;
        # a web server must not start with broken flows.
        if click.get_current_context(silent=True) is None:
            raise
        flow_error = exc
    engine = make_engine(settings["DATABASE_URL"])
    provider, twilio = _providers(settings)
    from gateway import channels as channels_module
    from gateway.outbound import jobs as queue

    vault = NumberVault.from_keys(numbers_keys_for(app.config))
    redis = queue.connect(settings["REDIS_URL"])
    channels = channels_module.build(settings, twilio, redis)
    if settings["SMS_PROVIDER"] in ("africastalking", "android"):
        provider = channels.providers[settings["SMS_PROVIDER"]]
    channels.providers[provider.name] = provider  # one console provider: what it printed is in one place
    app.extensions["gateway"] = Services(engine, make_session_factory(engine, vault, redis), flow_set, flow_error,
                                         provider, twilio, redis, channels)

    from gateway import cli, limits
    from gateway.web import api
    from gateway.channels import local_hooks as channel_hooks
    from gateway.web import console
    from gateway.web import health
    from gateway.inbound import spool
    from gateway.channels import webhooks

    limits.init_app(app)

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(channel_hooks.bp)
    app.register_blueprint(health.bp)
    console.init_app(app)
    api.init_app(app)
    cli.init_app(app)
    spool.init_app(app)
    if not settings["REDIS_URL"] and settings.get("EMBEDDED_WORKER", not settings.get("TESTING")):
        _start_embedded_worker_on_first_request(app)
    return app


def _start_embedded_worker_on_first_request(app: Flask) -> None:
    """The web process runs the RQ jobs itself when there is no Redis (commands do not)."""
    lock = threading.Lock()
    started: list[object] = []

    @app.before_request
    def _start() -> None:
        if not started:
            with lock:
                if not started:
                    from gateway.outbound import jobs as queue

                    started.append(queue.start_embedded_worker(app))
