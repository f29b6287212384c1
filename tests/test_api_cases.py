"""/api/v1/cases and /api/v1/officials: filters, paging, roles, a case's parts, and never a reporter."""
from __future__ import annotations

import json

from sqlalchemy import select

from gateway.core.phones import mask_number
from gateway.models import AuditEvent, Case
from tests.case_rows import OFFICIAL_NUMBER, reporter_identity, seed
from tests.test_api import api, bearer, error_of, tokens  # noqa: F401  (fixtures)


def refs(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_data(as_text=True)
    return sorted(c["ref"] for c in response.get_json()["data"])


def test_cases_list_filters_and_pages(app, api, tokens) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    seeded = seed(app)
    viewer = bearer(tokens["viewer"])
    assert refs(api.get("/api/v1/cases", headers=viewer)) == ["CBLT9", "CMNG8", "CZMB7"]
    assert refs(api.get("/api/v1/cases?status=overdue", headers=viewer)) == ["CBLT9", "CZMB7"]
    assert refs(api.get("/api/v1/cases?status=open", headers=viewer)) == ["CMNG8"]
    assert refs(api.get("/api/v1/cases?place=zomba", headers=viewer)) == ["CZMB7"]  # matched to the gazetteer
    assert refs(api.get("/api/v1/cases?service=CLINIC", headers=viewer)) == ["CBLT9", "CZMB7"]
    assert refs(api.get(f"/api/v1/cases?official_id={seeded.grace}", headers=viewer)) == ["CZMB7"]
    page = api.get("/api/v1/cases?per_page=2&page=2", headers=viewer).get_json()
    assert page["pagination"] == {"page": 2, "per_page": 2, "total": 3, "pages": 2} and len(page["data"]) == 1
    body = {c["ref"]: c for c in api.get("/api/v1/cases", headers=viewer).get_json()["data"]}
    assert body["CZMB7"]["overdue"] and body["CBLT9"]["overdue"] and not body["CMNG8"]["overdue"]
    assert body["CZMB7"]["official"] == {"id": seeded.grace, "name": "Grace Phiri", "role": "District Health Officer"}
    assert body["CZMB7"]["deadline_at"].endswith("Z") and body["CMNG8"]["official"] is None
    for query, field in (("status=nope", "status"), ("official_id=x", "official_id"), ("place=Qqqqqqqqqq", "place"),
                         ("colour=red", "colour"), ("page=0", "page")):
        assert error_of(api.get(f"/api/v1/cases?{query}", headers=viewer), 400)["field"] == field


def test_a_case_has_its_timeline_reports_and_texts_and_never_a_reporter(app, api, tokens) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    seeded = seed(app)
    for role in ("viewer", "organizer", "admin"):
        response = api.get(f"/api/v1/cases/{seeded.zomba}", headers=bearer(tokens[role]))
        assert response.status_code == 200
        body = response.get_json()
        assert [e["kind"] for e in body["timeline"]] == ["opened", "sent", "acknowledged"]
        assert body["timeline"][2]["actor"] == f"official:{seeded.grace}"
        assert sorted(r["ref"] for r in body["reports"]) == ["RANON22", "RNAMED1"]
        assert all(set(r) == {"ref", "delivered", "date", "details", "verification"} for r in body["reports"])
        assert [m["body"] for m in body["messages"]] == [
            "2 reports: clinic in Zomba since 23 Nov. Case CZMB7. Reply ACK CZMB7", "ACK czmb7"]
        text = json.dumps(body)
        for identity in [*reporter_identity(app), OFFICIAL_NUMBER, "contact_id", "anonymous"]:
            assert identity not in text, (role, identity)
    assert error_of(api.get("/api/v1/cases/999999", headers=bearer(tokens["viewer"])), 404)["code"] == "not_found"
    error_of(api.get("/api/v1/cases/1"), 401)


def test_a_viewer_cannot_move_a_case_and_bad_bodies_are_400(app, api, tokens) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    seeded = seed(app)
    viewer, org = bearer(tokens["viewer"]), bearer(tokens["organizer"])
    for action, body in (("send", None), ("escalate", None), ("close", {"note": "fixed"})):
        error_of(api.post(f"/api/v1/cases/{seeded.zomba}/{action}", headers=viewer, json=body), 403)
    error_of(api.post("/api/v1/officials/import", headers=viewer, json={"csv": "number\n"}), 403)
    for body, field in (({}, "note"), ({"note": "  "}, "note"), ({"note": "x" * 1001}, "note"),
                        ({"note": "ok", "resolved": "yes"}, "resolved"), ({"note": "ok", "why": 1}, "why")):
        assert error_of(api.post(f"/api/v1/cases/{seeded.zomba}/close", headers=org, json=body), 400)["field"] == field
    error_of(api.post(f"/api/v1/cases/{seeded.zomba}/close", headers=org, data="note=x",
                      content_type="application/x-www-form-urlencoded"), 400)
    error_of(api.post(f"/api/v1/cases/{seeded.zomba}/escalate", headers=org, json={"note": 5}), 400)
    error_of(api.post("/api/v1/cases/999999/close", headers=org, json={"note": "x"}), 404)
    error_of(api.get(f"/api/v1/cases/{seeded.zomba}/close", headers=org), 405)
    for field_value, in (({"csv": 5},), ({},), ({"csv": "a\u0000b"},)):
        assert error_of(api.post("/api/v1/officials/import", headers=org, json=field_value), 400)["field"] == "csv"
    with app.extensions["gateway"].sessions() as s:
        assert s.get(Case, seeded.zomba).status == "acknowledged"  # type: ignore[union-attr]
        assert not s.scalars(select(AuditEvent).where(AuditEvent.action.like("case.%"))).all()


def test_officials_list_masks_numbers_for_viewers_with_their_record(app, api, tokens) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    seeded = seed(app)
    body = api.get("/api/v1/officials", headers=bearer(tokens["viewer"])).get_json()
    assert [o["name"] for o in body["data"]] == ["Grace Phiri", "John Banda"]  # by rung
    grace, john = body["data"]
    assert grace["number"] == mask_number(OFFICIAL_NUMBER) and grace["id"] == seeded.grace
    assert grace["places"] == ["Zomba"] and john["services"] == [] and john["level"] == 2
    assert grace["record"] == {"cases_sent": 1, "acknowledged": 1, "promised": 0, "done": 0, "overdue": 0,
                               "median_hours_to_acknowledge": 4.0}
    assert john["record"]["overdue"] == 1 and john["record"]["median_hours_to_acknowledge"] is None
    body = api.get("/api/v1/officials", headers=bearer(tokens["organizer"])).get_json()
    assert body["data"][0]["number"] == OFFICIAL_NUMBER
    error_of(api.get("/api/v1/officials?per_page=1000", headers=bearer(tokens["viewer"])), 400)


def test_an_organizer_token_sends_escalates_and_closes(app, api, tokens) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    seeded = seed(app)
    org = bearer(tokens["organizer"])
    response = api.post(f"/api/v1/cases/{seeded.mangochi}/send", headers=org)
    assert response.status_code == 200 and "no official at rung 1" in response.get_json()["warning"]
    response = api.post(f"/api/v1/cases/{seeded.zomba}/escalate", headers=org, json={"note": "silence"})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["level"] == 2 and body["official"]["name"] == "John Banda" and body["status"] == "sent"
    assert "warning" not in body and any(e["note"] == "silence" for e in body["timeline"])
    assert any(m["official_id"] == seeded.john and m["direction"] == "out" for m in body["messages"])
    error = error_of(api.post(f"/api/v1/cases/{seeded.zomba}/escalate", headers=org), 409)
    assert error["code"] == "conflict" and "No official above rung 2" in error["message"]
    response = api.post(f"/api/v1/cases/{seeded.zomba}/send", headers=org)  # again: a reminder
    assert response.status_code == 200 and response.get_json()["timeline"][-1]["kind"] == "resent"
    body = api.post(f"/api/v1/cases/{seeded.zomba}/close", headers=org,
                    json={"note": "staffed again", "resolved": True}).get_json()
    assert body["status"] == "resolved" and body["timeline"][-1]["note"] == "staffed again"
    assert body["timeline"][-1]["actor"] == "api:organizer@example.org"
    error = error_of(api.post(f"/api/v1/cases/{seeded.zomba}/send", headers=org), 409)
    assert error["message"] == "Case CZMB7 is resolved: it cannot be sent."
    text = json.dumps(body)
    for identity in reporter_identity(app):
        assert identity not in text
    with app.extensions["gateway"].sessions() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.actor == "api:organizer@example.org")
                                 .order_by(AuditEvent.id)))
    assert actions[:4] == ["case.no_official", "case.overdue", "case.sent", "case.resent"]
    assert "case.resolved" in actions


def test_officials_import_takes_csv_inside_json(app, api, tokens) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    org = bearer(tokens["organizer"])
    csv_text = ("number,name,role,language,places,services,level\n"
                "0991000001,Grace Phiri,District Health Officer,en,Zomba,clinic,1\n"
                "0991000002,John Banda,District Commissioner,xx,Zomba,,2\n")
    response = api.post("/api/v1/officials/import", headers=org, json={"csv": csv_text})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["imported"] == 1 and len(body["errors"]) == 1 and body["errors"][0].startswith("line 3:")
    listed = api.get("/api/v1/officials", headers=org).get_json()["data"]
    assert [(o["name"], o["number"]) for o in listed] == [("Grace Phiri", "+265991000001")]
    error_of(api.post("/api/v1/officials/import", headers=org, data=csv_text, content_type="text/csv"), 400)
