"""The HTTP side of each channel: one blueprint per kind, keyed like gateway.channels.PROVIDERS.

Every webhook refuses an oversized body first (hooks/base.py), checks who is calling (a
signature, or a secret in the URL), parses the provider's form into an InboundSMS or a
StatusUpdate, and hands it on: texts to `svc.inbound.receive`, statuses to `status.advance`.

The webhooks are served by a Flask app of their own (`webhook_app`), which the gateway's app
hands every request under PREFIX (`ByPath`): none of what the console and the API put on each
request (a cookie session, the rate limiter's look-up, CSRF, page headers, language selection)
runs for a provider's webhook. Under a burst those were about a fifth of a stored text's CPU.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask
from flask.sessions import SessionInterface

from gateway.channels.hooks import africastalking, android, twilio

WEBHOOKS: dict[str, Blueprint] = {"twilio": twilio.bp, "africastalking": africastalking.bp, "android": android.bp}
PREFIX = "/sms/"  # every webhook's path starts so (DESIGN.md's routes); nothing else does


class _NoSessions(SessionInterface):
    """No cookie session: a provider sends none, and reading one is a signer built per request."""

    def open_session(self, app: Flask, request: Any) -> None:
        return None  # Flask then hands the request a NullSession, which is never saved

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        return None


def webhook_app(app: Flask, before: Iterable[Callable[[], Any]], teardown: Iterable[Callable[..., Any]]) -> Flask:
    """The webhooks as an app sharing `app`'s config and services; `before` runs before each webhook
    (the spool's replay, the embedded worker's start), `teardown` after it."""
    hooks = Flask(app.import_name)  # the same name: the same logger, root path and templates
    hooks.config = app.config  # one config: what the factory or a test sets there holds here too
    hooks.session_interface = _NoSessions()
    hooks.extensions["gateway"] = app.extensions["gateway"]
    for blueprint in WEBHOOKS.values():
        hooks.register_blueprint(blueprint)
    for fn in before:
        hooks.before_request(fn)
    for fn in teardown:
        hooks.teardown_request(fn)
    stray = [rule.rule for rule in hooks.url_map.iter_rules() if rule.endpoint != "static"
             and not rule.rule.startswith(PREFIX)]
    if stray:  # ByPath would never hand it a request: refuse to start rather than serve a 404
        raise RuntimeError(f"webhook routes outside {PREFIX}: {stray}")
    return hooks


class ByPath:
    """WSGI: a request under PREFIX goes to the webhooks' app, any other to the gateway's."""

    def __init__(self, gateway: Callable[..., Any], hooks: Callable[..., Any]) -> None:
        self.gateway, self.hooks = gateway, hooks

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO", "").startswith(PREFIX):
            return self.hooks(environ, start_response)
        return self.gateway(environ, start_response)
