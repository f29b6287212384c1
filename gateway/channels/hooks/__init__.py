"""The HTTP side of each channel: one module per kind, keyed like gateway.channels.PROVIDERS.

Every webhook refuses an oversized body first (hooks/base.py), checks who is calling (a
signature, or a secret in the URL), parses the provider's form into an InboundSMS or a
StatusUpdate, and hands it on: texts to `svc.inbound.receive`, statuses to `status.advance`.

The webhooks are a WSGI app of their own (`Webhooks`), which the gateway's app hands every
request under PREFIX (`ByPath`): none of what the console and the API put on each request (a
cookie session, the rate limiter's look-up, CSRF, page headers, language selection) runs for a
provider's webhook. Nor does Flask's request machinery (its request context, dispatch and
response finalising): each webhook is a function of Werkzeug's request, the object Flask's own
request extends, run inside the gateway's app context (`services()`, `g`, logging). Called in one
process, a stored JOIN's webhook took about 220 µs instead of 240; under wrk's JOIN shape the web
processes' CPU a text fell from 1.12 to 1.07 ms on average, inside the hour's noise (2 cores,
2026-11-30, A B rounds: docs/benchmarks.md's eleventh pass). Status callbacks, one or more for
every message a broadcast sends, save the same.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from gateway.channels.hooks import africastalking, android, twilio
from gateway.channels.hooks.base import refuse_oversized

Handler = Callable[..., Response]  # the request, then the rule's arguments (Africa's Talking's token)
# Each kind's webhooks: (rule, handler); every one is a POST.
WEBHOOKS: dict[str, list[tuple[str, Handler]]] = {
    "twilio": twilio.ROUTES, "africastalking": africastalking.ROUTES, "android": android.ROUTES}
PREFIX = "/sms/"  # every webhook's path starts so (DESIGN.md's routes); nothing else does


class Webhooks:
    """WSGI: the providers' webhooks, each run in `app`'s context with `before` run first, as Flask
    runs its hooks, and the app context's teardowns (the session's close) after, given the error as
    Flask gives it; an HTTP error is answered as Flask would (its page), any other exception is
    logged and answered 500 (raised instead where Flask would propagate it)."""

    def __init__(self, app: Flask, before: Iterable[Callable[[], Any]]) -> None:
        self.app = app
        self.before = list(before)
        self.handlers: dict[str, Handler] = {}
        rules = []
        for kind, routes in WEBHOOKS.items():
            for rule, handler in routes:
                endpoint = f"{kind}.{handler.__name__}"
                self.handlers[endpoint] = handler
                rules.append(Rule(rule, endpoint=endpoint, methods=["POST"]))
        stray = [rule.rule for rule in rules if not rule.rule.startswith(PREFIX)]
        if stray:  # ByPath would never hand it a request: refuse to start rather than serve a 404
            raise RuntimeError(f"webhook routes outside {PREFIX}: {stray}")
        self.url_map = Map(rules)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        context = self.app.app_context()  # a new one each time: its own g, its teardowns at pop
        context.push()
        error: Exception | None = None
        try:
            response = self._dispatch(request)
        except Exception as exc:
            error = exc
            if self.app.config.get("PROPAGATE_EXCEPTIONS") or self.app.testing or self.app.debug:
                raise
            self.app.logger.error("Exception on %s [%s]", request.path, request.method, exc_info=True)
            response = InternalServerError().get_response(environ)
        finally:
            context.pop(error)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        try:
            endpoint, args = self.url_map.bind_to_environ(request.environ).match()
            for fn in self.before:
                fn()
            refuse_oversized(request)  # before any form, body, signature or secret is read
            return self.handlers[endpoint](request, **args)
        except HTTPException as exc:  # 400, 403, 404, 405, 413: the error's own page, as Flask answers it
            return exc.get_response(request.environ)


class ByPath:
    """WSGI: a request under PREFIX goes to the webhooks' app, any other to the gateway's."""

    def __init__(self, gateway: Callable[..., Any], hooks: Callable[..., Any]) -> None:
        self.gateway, self.hooks = gateway, hooks

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO", "").startswith(PREFIX):
            return self.hooks(environ, start_response)
        return self.gateway(environ, start_response)
