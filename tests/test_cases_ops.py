"""The organizers' case operations (h12-web's console and API call these): ladder, events, texts."""
from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from gateway import cases
from gateway.models import (
    AuditEvent,
    Case,
    CaseEvent,
    CaseReport,
    Contact,
    Message,
    Official,
    utcnow,
)
from gateway.people.contacts import number_of
from tests.cases_helpers import add_report, import_officials
from tests.helpers import svc


def test_open_send_merge_split_close(app: Flask) -> None:
    import_officials(app)
    r1, r2, r3, r4 = (add_report(app) for _ in range(4))
    now = utcnow()
    with svc(app).sessions() as s, s.begin():
        case = cases.open_by_hand(s, place="Zomba", service="clinic", report_ids=[r1, r2], actor="org@x.org", now=now)
        other = cases.open_by_hand(s, place="Zomba", service="clinic", report_ids=[r3, r4], actor="org@x.org", now=now)
        assert case.status == "open" and case.report_count == 2 and len(case.ref) == 5
        with pytest.raises(cases.CaseError, match="one case only"):
            cases.open_by_hand(s, place="Zomba", service="clinic", report_ids=[r1], actor="org@x.org", now=now)
        cases.merge(s, case, other, actor="org@x.org", now=now)
        assert case.report_count == 4 and other.status == "closed"
        new = cases.split(s, case, [r4], actor="org@x.org", now=now)
        assert new.report_count == 1 and case.report_count == 3
        with pytest.raises(cases.CaseError, match="Leave at least one"):
            cases.split(s, new, [r4], actor="org@x.org", now=now)
        row = cases.send(s, case, actor="org@x.org", now=now)
        assert row is not None and case.status == "sent" and case.deadline_at is not None
        official = s.get(Official, case.official_id)
        assert official is not None and official.role == "District Health Officer"
        assert row.contact_id == official.contact_id
        contact = s.get(Contact, row.contact_id)
        assert contact is not None and number_of(contact) == "+265888000001" and contact.consent_at is None
        assert row.body is not None and f"Reply ACK {case.ref}, PROMISE {case.ref} 12/3 or DONE {case.ref}" in row.body
        assert "3 reports of no clinic in Zomba" in row.body and row.segments == 1
        with pytest.raises(cases.CaseError, match="cannot be closed|cannot become"):
            cases.merge(s, new, other, actor="org@x.org", now=now)
        cases.escalate(s, case, actor="org@x.org", now=now, note="no answer by phone")
        assert case.level == 2 and case.status == "sent"
        assert s.get(Official, case.official_id).role == "District Commissioner"  # type: ignore[union-attr]
        with pytest.raises(cases.CaseError, match="No official above rung 2"):
            cases.escalate(s, case, actor="org@x.org", now=now)
        cases.close(s, case, actor="org@x.org", note="fixed, confirmed by phone", now=now, resolved=True)
        assert case.status == "resolved"
        with pytest.raises(cases.CaseError, match="cannot become closed|cannot become resolved"):
            cases.close(s, other, actor="org@x.org", note="again", now=now)
        kinds = [e.kind for e in cases.timeline(s, case)]
        assert kinds == ["opened", "merged", "split", "sent", "overdue", "sent", "resolved"]
        assert all(e.actor == "org@x.org" for e in cases.timeline(s, case))
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "case.resolved")).first() is not None
        assert cases.send(s, new, actor="org@x.org", now=now) is not None
        assert s.scalar(select(CaseReport.case_id).where(CaseReport.report_id == r4)) == new.id
        texts = list(s.scalars(select(Message.body).where(Message.direction == "out")))
        assert len(texts) == 3


def test_send_without_an_official_says_so(app: Flask) -> None:
    r1 = add_report(app, place="Balaka")
    with svc(app).sessions() as s, s.begin():
        case = cases.open_by_hand(s, place="Balaka", service="clinic", report_ids=[r1], actor="a@x.org", now=utcnow())
        assert cases.send(s, case, actor="a@x.org", now=utcnow()) is None
        assert case.status == "open"
        assert s.scalars(select(CaseEvent.kind).where(CaseEvent.case_id == case.id)).all()[-1] == "no_official"
        assert s.scalar(select(Case.id)) == case.id


def test_an_officials_text_waits_for_the_end_of_quiet_hours_in_the_places_time_zone(db_url: str, tmp_path) -> None:
    from datetime import datetime

    from tests.conftest import make_app

    app = make_app(db_url, tmp_path, QUIET_HOURS="21:00-07:00")
    try:
        import_officials(app)
        r1 = add_report(app)
        evening = datetime(2026, 11, 30, 20, 0)  # 22:00 in Zomba (UTC+2)
        morning = datetime(2026, 11, 30, 10, 0)
        with svc(app).sessions() as s, s.begin():
            case = cases.open_by_hand(s, place="Zomba", service="clinic", report_ids=[r1], actor="a@x.org", now=evening)
            row = cases.send(s, case, actor="a@x.org", now=evening)
            assert row is not None and row.send_after == datetime(2026, 12, 1, 5, 0)  # 07:00 in Zomba
            again = cases.send(s, case, actor="a@x.org", now=morning)
            assert again is not None and again.send_after is None
    finally:
        svc(app).engine.dispose()


def test_flows_check_measures_every_case_text_in_one_segment(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["flows", "check"])
    assert result.exit_code == 0, result.output
    for name in ("case_sent", "case_escalated", "case_escalated_promise", "case_escalated_nodate", "status_resolved",
                 "reporter_promised"):
        for lang in ("en", "ny", "es"):
            line = next(x for x in result.output.splitlines() if f"texts.{name}.{lang}:" in x)
            assert "GSM-7 1 seg" in line and " ok" in line, line


def test_a_case_text_missing_from_the_flow_files_is_an_error_not_an_empty_sms(app: Flask) -> None:
    from gateway.cases import ops

    with app.app_context():
        flows = svc(app).flows
        assert ops.say(flows, "case_ack_ok", "en", case="C7K2P").startswith("Thank you. Case C7K2P")
        with pytest.raises(ops.CaseError, match="no text 'case_no_such_text'"):
            ops.say(flows, "case_no_such_text", "en")
