"""The HTTP side of each channel: one blueprint per kind, keyed like gateway.channels.PROVIDERS.

Every webhook refuses an oversized body first (hooks/base.py), checks who is calling (a
signature, or a secret in the URL), parses the provider's form into an InboundSMS or a
StatusUpdate, and hands it on: texts to `svc.inbound.receive`, statuses to `status.advance`.
"""
from __future__ import annotations

from flask import Blueprint

from gateway.channels.hooks import africastalking, android, twilio

WEBHOOKS: dict[str, Blueprint] = {"twilio": twilio.bp, "africastalking": africastalking.bp, "android": android.bp}
