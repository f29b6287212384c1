"""The `flask` commands: simulate, flows check, contacts import/export, reports export, db."""
from __future__ import annotations

import csv
import io
import shutil
from datetime import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from gateway import create_app
from gateway.db import Base
from gateway.models import Contact
from gateway.people.contacts import number_of
from gateway.people.csvio import REPORT_COLUMNS
from gateway.settings import ROOT, Settings
from tests.conftest import NUMBERS_KEY, SECRET_KEY
from tests.helpers import change_settings
from tests.transcript import Phone

A = "+265991234567"
HEADER = "number,name,language,place,tags\n"


def cli(runner, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(args=list(args))


def contacts(app) -> dict[str, Contact]:  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].sessions() as s:
        return {number_of(c): c for c in s.scalars(select(Contact))}


def replies(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [line[2:] for line in result.output.splitlines() if line.startswith("< ")]


# --------------------------------------------------------------------------- sms simulate


def test_simulate_walks_a_newcomer_through_join(runner, app) -> None:  # type: ignore[no-untyped-def]
    said = []
    for sender, text in [(A, "JOIN"), (A, "Chikondi"), ("0991234567", "zomba"), ("099 123 4567", "1 3")]:
        result = cli(runner, "sms", "simulate", "--from", sender, *text.split())
        assert result.exit_code == 0, result.output
        said += replies(result)
    assert said == [
        "Our Network: you joined our SMS alerts. Text STOP any time to end, HELP for help. What is your name? (or SKIP)",
        "Where do you live? Send your district, e.g. Zomba.",
        "What matters to you? Reply with numbers: 1 Health 2 Farming 3 Water 4 Education 5 Safety",
        "Welcome! You will get alerts for Zomba. Text REPORT to tell us if a service came, STOP to end.",
    ]
    [(number, c)] = contacts(app).items()
    assert (number, c.name, c.place, c.tags) == (A, "Chikondi", "Zomba", ["health", "water"])


def test_simulate_from_a_non_number_fails_clearly(runner, app) -> None:  # type: ignore[no-untyped-def]
    result = cli(runner, "sms", "simulate", "--from", "hello", "JOIN")
    assert result.exit_code != 0
    assert "'hello' is not a phone number" in result.output
    assert contacts(app) == {}


# --------------------------------------------------------------------------- flows check


def test_flows_check_on_the_shipped_flows(runner) -> None:  # type: ignore[no-untyped-def]
    result = cli(runner, "flows", "check")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("report.yaml: steps[0].ask.en: GSM-7 1 seg" in line and line.endswith(" ok") for line in lines)
    prompts = [line for line in lines if " seg " in line]
    assert len(prompts) > 50 and all(("GSM-7" in p or "UCS-2" in p) for p in prompts)
    drafts = [line for line in lines if line.startswith("draft:")]
    for name in ("join", "report", "rights", "system"):
        for lang in ("ny", "es"):
            assert any(f"{name}.yaml: '{lang}'" in d for d in drafts), (name, lang, drafts)
    assert lines[-1] == f"3 flows, {len(prompts)} prompts ok"


@pytest.fixture
def flows_dir(app, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the shipped flows that the app's commands read."""
    directory = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", directory)
    change_settings(app, flows_dir=directory)  # `flows check` reads the parsed settings
    return directory


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


LONG = "Which service did you use? " + "x" * 173  # 200 GSM-7 characters: 2 segments


def test_flows_check_fails_on_a_prompt_over_one_segment(runner, flows_dir: Path) -> None:  # type: ignore[no-untyped-def]
    edit(flows_dir / "report.yaml", "Which service? 1 Clinic 2 Fertilizer 3 Water 4 School 5 Other", LONG)
    result = cli(runner, "flows", "check")
    assert result.exit_code != 0
    [line] = [line for line in result.output.splitlines() if "OVER" in line]
    assert line == f"{flows_dir / 'report.yaml'}: steps[0].ask.en: GSM-7 2 seg 200 chars OVER 1 segment(s)"
    assert "1 prompt(s) over their segment limit" in result.output


def test_flows_check_passes_with_allow_segments(runner, flows_dir: Path) -> None:  # type: ignore[no-untyped-def]
    edit(flows_dir / "report.yaml", "Which service? 1 Clinic 2 Fertilizer 3 Water 4 School 5 Other", LONG)
    edit(flows_dir / "report.yaml", "  - id: service\n", "  - id: service\n    allow_segments: 2\n")
    result = cli(runner, "flows", "check")
    assert result.exit_code == 0, result.output
    assert "OVER" not in result.output and "steps[0].ask.en: GSM-7 2 seg 200 chars ok" in result.output


@pytest.mark.parametrize("file, old, new, message", [
    ("report.yaml", "expect: place", "expect: where", "report.yaml: steps[3].expect: expected one of choice"),
    ("report.yaml", "default: place", "default: where", "report.yaml: steps[1]: goes to 'where', but no step has that id"),
    ("rights.yaml", "drafts: [ny, es]", "drafts: [ny, es", "rights.yaml: not valid YAML (line 5)"),
    ("rights.yaml", "en: [RIGHTS]", "en: [RIGHTS, JOIN]", "rights.yaml: keywords.en: 'join' also starts flow 'join'"),
    ("rights.yaml", "es: [DERECHOS]", "es: [DERECHOS, BAJA]", "rights.yaml: keywords.es: 'baja' is a compliance keyword"),
    ("cases.yaml", "threshold: 2\n", "threshold: 0\n", "cases.yaml: defaults.threshold:"),
])
def test_flows_check_names_the_file_and_key(runner, flows_dir: Path, file: str, old: str, new: str,  # type: ignore[no-untyped-def]
                                             message: str) -> None:
    edit(flows_dir / file, old, new)
    result = cli(runner, "flows", "check")
    assert result.exit_code != 0
    assert f"{flows_dir}/{message}" in result.output
    assert f"1 problem(s) in {flows_dir}" in result.output


# --------------------------------------------------------------------------- contacts import / export


def import_csv(runner, tmp_path: Path, content: str | bytes):  # type: ignore[no-untyped-def]
    path = tmp_path / "contacts.csv"
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return cli(runner, "contacts", "import", str(path))


def test_import_keeps_good_rows_and_names_bad_lines(runner, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = import_csv(runner, tmp_path, "\ufeffNumber,NAME,Language,Place,Tags\n"
                        "0991234567,Chikondi,ny,Zomba,health;water\n"  # 2
                        "099,Bad,en,Zomba,\n"                          # 3 bad number
                        "0881234567,Ana,fr,Zomba,\n"                   # 4 unknown language
                        "0881234568,Ben,en,Narnia,\n"                  # 5 unknown place
                        "+265991234567,Again,en,,\n"                   # 6 repeated number
                        "0991111111,Too,en,Zomba,x,many\n"             # 7 too many columns
                        "+50499123456,María,es,Tegucigalpa,\n")        # 8
    assert result.exit_code == 1
    for n in (3, 4, 5, 6, 7):
        assert f"contacts.csv: line {n}:" in result.output
    assert "line 2:" not in result.output and "line 8:" not in result.output
    assert "2 created, 0 updated (0 stay stopped), 5 line(s) with errors" in result.output
    got = {n: (c.name, c.language, c.place, c.tags, c.status, c.consent_at is not None)
           for n, c in contacts(app).items()}
    assert got == {A: ("Chikondi", "ny", "Zomba", ["health", "water"], "active", True),
                   "+50499123456": ("María", "es", "Francisco Morazán", [], "active", True)}


def test_import_of_good_rows_exits_0_and_updates(runner, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert import_csv(runner, tmp_path, HEADER + f"{A},Ana,,,health\n").exit_code == 0
    result = import_csv(runner, tmp_path, HEADER + f"{A},,en,Zomba,water\n")
    assert result.exit_code == 0, result.output
    assert "0 created, 1 updated" in result.output
    c = contacts(app)[A]
    assert (c.name, c.language, c.place, c.tags) == ("Ana", "en", "Zomba", ["health", "water"])


def test_import_of_a_non_utf8_file_fails_clearly(runner, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = import_csv(runner, tmp_path, (HEADER + f"{A},María,es,,\n").encode("latin-1"))
    assert result.exit_code != 0
    assert "not UTF-8 text; save the sheet as 'CSV UTF-8'" in result.output
    assert contacts(app) == {}


def test_import_never_restarts_a_stopped_contact(runner, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    Phone(app).send(A, "STOP")
    assert contacts(app)[A].status == "stopped"
    result = import_csv(runner, tmp_path, HEADER + "0991234567,Ana,en,Zomba,health\n")
    assert result.exit_code == 0, result.output
    assert "0 created, 1 updated (1 stay stopped)" in result.output
    c = contacts(app)[A]
    assert (c.status, c.name, c.tags) == ("stopped", "Ana", ["health"])


def test_import_of_a_too_long_name(runner, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = import_csv(runner, tmp_path, HEADER + "0991234567," + "A" * 130 + ",,,\n0881234567,Ben,,,\n")
    assert result.exception is None or isinstance(result.exception, SystemExit)
    got = contacts(app)
    assert got["+265881234567"].name == "Ben"
    assert "line 2:" in result.output or len(got[A].name) <= 120


def export(runner) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    result = cli(runner, "contacts", "export")
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_export_contacts(runner, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    Phone(app).send("+265881234567", "STOP")
    assert import_csv(runner, tmp_path, HEADER + "0991234567,=SUM(A1),ny,Zomba,water;health\n"
                      "0881234567,Ben,,,\n").exit_code == 0
    result = cli(runner, "contacts", "export")
    assert result.stdout.splitlines()[0] == "number,name,language,place,tags,status"
    assert export(runner) == [
        {"number": "+265881234567", "name": "Ben", "language": "", "place": "", "tags": "", "status": "stopped"},
        {"number": A, "name": "'=SUM(A1)", "language": "ny", "place": "Zomba", "tags": "health;water",
         "status": "active"},
    ]


def test_an_exported_file_imports_again(runner, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert import_csv(runner, tmp_path, HEADER + "0991234567,Ana,ny,Zomba,water;health\n").exit_code == 0
    exported = cli(runner, "contacts", "export").stdout
    result = import_csv(runner, tmp_path, exported)
    assert result.exit_code == 0, result.output
    assert "0 created, 1 updated" in result.output


# --------------------------------------------------------------------------- reports export


def test_reports_export_has_no_phone_numbers(runner, app) -> None:  # type: ignore[no-untyped-def]
    Phone(app).run(f"""
        {A} > JOIN
        {A} < Our Network: you joined...
        {A} > Chikondi Banda
        {A} < Where do you live?...
        {A} > REPORT NAME CLINIC ZOMBA NO nurse absent
        {A} < Thank you. Report * is recorded with your name...
    """)
    result = cli(runner, "reports", "export")
    assert result.exit_code == 0, result.output
    header, row, *rest = list(csv.reader(io.StringIO(result.stdout)))
    assert (tuple(header), rest) == (REPORT_COLUMNS, [])
    got = dict(zip(header, row))
    assert len(got["ref"]) >= 4 and got["date"][:2] == "20"
    assert {k: got[k] for k in ("country", "place", "service", "delivered", "details", "anonymous", "language")} == {
        "country": "MW", "place": "Zomba", "service": "clinic", "delivered": "no", "details": "nurse absent",
        "anonymous": "no", "language": "en"}
    for form in (A, A[1:], "0991234567", "991234567"):
        assert form not in result.output


# --------------------------------------------------------------------------- db


def test_db_upgrade_and_downgrade_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    fresh = create_app({
        "DATABASE_URL": f"sqlite:///{path}", "REDIS_URL": None, "SECRET_KEY": SECRET_KEY, "SMS_PROVIDER": "console",
        "INSTANCE_PATH": str(tmp_path), "TESTING": True,
    })
    runner = fresh.test_cli_runner()
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        result = runner.invoke(args=["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert "database at head" in result.output
        assert set(sa.inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
        result = runner.invoke(args=["db", "downgrade", "base"])
        assert result.exit_code == 0, result.output
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
        fresh.extensions["gateway"].engine.dispose()


def test_quiet_hours_default_follows_the_provider(tmp_path) -> None:
    """Quiet hours hold bulk sends with Twilio by default; the console provider reaches no phone."""
    console = Settings.from_env({}, tmp_path)
    twilio = Settings.from_env({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM_NUMBER": "+15005550006",
                                "NUMBERS_KEY": NUMBERS_KEY, "SECRET_KEY": SECRET_KEY}, tmp_path)
    chosen = Settings.from_env({"QUIET_HOURS": "22:00-06:00"}, tmp_path)
    assert (console.quiet_hours, twilio.quiet_hours, chosen.quiet_hours) == (
        None, (time(21, 0), time(7, 0)), (time(22, 0), time(6, 0)))
