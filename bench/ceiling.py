"""The inbound ceiling: a bare Flask route that checks the Twilio signature and returns empty TwiML.

Served by gunicorn with the same settings as the gateway (bench/common.py GUNICORN_ARGS):

    gunicorn --workers 2 --threads 64 --timeout 15 bench.ceiling:app
"""
from __future__ import annotations

import os

from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

app = Flask(__name__)
_validator = RequestValidator(os.environ.get("TWILIO_AUTH_TOKEN", ""))
_base = (os.environ.get("PUBLIC_BASE_URL") or "").rstrip("/")


@app.get("/ping")
def ping() -> str:
    return "ok"


@app.post("/sms/twilio")
def inbound() -> Response:
    url = _base + request.path if _base else request.url
    if not _validator.validate(url, request.form, request.headers.get("X-Twilio-Signature", "")):
        abort(403)
    return Response(MessagingResponse().to_xml(), mimetype="application/xml")
