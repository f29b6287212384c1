"""GET /metrics: the gateway's vitals in Prometheus text format, for a scraper holding METRICS_TOKEN.

Why a collector that reads the database and Redis at scrape time, and no in-process counters:
gunicorn runs several processes and RQ workers run on other hosts, so a counter kept in one
process's memory shows a scraper only that process's share, and resets when it restarts.
prometheus_client's multiprocess mode fixes the first only for processes of one host sharing a
directory. The database already holds every text in and out with its status and channel; the
few things it does not hold (pacing waits, reconciler actions) are added up in Redis by whoever
does them (gateway/outbound/pacing.py, jobs.py). So any process answers a scrape with the whole
gateway's figures, and they survive restarts.
"""
from __future__ import annotations

import hmac
from collections.abc import Iterator

from flask import Blueprint, Response, abort, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway import services
from gateway.web import vitals

bp = Blueprint("metrics", __name__)


class GatewayCollector(Collector):
    """Yields the vitals (gateway/web/vitals.py) as metric families, read when scraped."""

    def collect(self) -> Iterator[Metric]:
        """Read the vitals now and yield them."""
        v = vitals.gather(detail=True)
        up = GaugeMetricFamily("gateway_up", "1 when the part answers, else 0", labels=["part"])
        up.add_metric(["database"], float(v.database))
        up.add_metric(["queue"], float(v.queue))
        yield up
        # A part that answered but whose figures could not all be read (a statement timed out): its
        # samples are left out, not sent as zeros (a counter at zero reads as a reset), and this says so.
        errors = GaugeMetricFamily("gateway_scrape_error", "1 when a part answered but its figures could not "
                                   "be read (their samples are omitted)", labels=["part"])
        for part in ("database", "queue"):
            errors.add_metric([part], float(part in v.failed))
        yield errors
        texts_in = CounterMetricFamily("gateway_texts_in", "Texts received, by channel", labels=["channel"])
        for channel, n in sorted(v.texts_in.items()):
            texts_in.add_metric([channel], n)
        yield texts_in
        out = GaugeMetricFamily("gateway_messages_out", "Outbound messages by status and channel",
                                labels=["status", "channel"])
        for (status, channel), n in sorted(v.messages_out.items()):
            out.add_metric([status, channel], n)
        yield out
        if v.waiting is not None:
            yield GaugeMetricFamily("gateway_queue_waiting_messages", "Outbound messages due and not yet sent",
                                    value=v.waiting)
            yield GaugeMetricFamily("gateway_queue_oldest_waiting_seconds",
                                    "How long the oldest waiting message has been due (0 when none wait)",
                                    value=v.oldest_seconds or 0.0)
            yield GaugeMetricFamily("gateway_queue_held_messages", "Messages held for later (quiet hours, a send time)",
                                    value=v.held or 0)
        jobs = GaugeMetricFamily("gateway_rq_jobs", "RQ jobs by queue and state", labels=["queue", "state"])
        for (queue, state), n in sorted(v.rq_jobs.items()):
            jobs.add_metric([queue, state], n)
        yield jobs
        if v.queue and "queue" not in v.failed:  # unread pacing is no sample, not a zero counter
            yield CounterMetricFamily("gateway_pacing_waits", "Sends that waited for their sender's rate",
                                      value=v.pacing.get("waits", 0.0))
            yield CounterMetricFamily("gateway_pacing_wait_seconds", "Seconds sends waited for their sender's rate",
                                      value=v.pacing.get("seconds", 0.0))
        yield _spool(v)
        actions = CounterMetricFamily("gateway_reconciler_actions", "What the reconciler did, summed over its runs",
                                      labels=["action"])
        for action, n in sorted(v.reconciler.items()):
            actions.add_metric([action], n)
        yield actions
        if v.workers is not None:
            yield GaugeMetricFamily("gateway_workers", "RQ workers alive (by their heartbeat)", value=v.workers)


def _spool(v: vitals.Vitals) -> GaugeMetricFamily:
    """Texts kept in the spool (waiting to be replayed) and set aside (could not be)."""
    spool = GaugeMetricFamily("gateway_spool_texts", "Inbound texts kept on disk while the database was away",
                              labels=["state"])
    spool.add_metric(["kept"], v.spool_kept)
    spool.add_metric(["rejected"], v.spool_rejected)
    return spool


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """The metrics, with `Authorization: Bearer METRICS_TOKEN`; 404 while no token is set, 401 for a wrong one."""
    token = services().settings.metrics_token
    if not token:
        abort(404)  # not switched on: nothing here, as far as anyone asking can tell
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return Response("a valid METRICS_TOKEN is needed: Authorization: Bearer <token>\n", 401,
                        {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain"})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector())
    return Response(generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST,
                                                      "Cache-Control": "no-store"})
