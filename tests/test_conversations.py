"""Every flow in every language, as transcripts through the whole inbound path (store, then handle)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from gateway.models import Contact, Message, Report
from gateway.people.contacts import number_is
from tests.conftest import make_stack_app
from tests.fakes.africastalking_api import FakeAfricasTalking
from tests.fakes.android_api import FakeAndroidPhone
from tests.helpers import svc
from tests.transcript import Phone
from tests.wires import CHANNELS, channel_settings, wire

Fakes = tuple[FakeAfricasTalking, FakeAndroidPhone]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    """A fake Africa's Talking API and a fake Android phone, on loopback."""
    with FakeAfricasTalking() as at, FakeAndroidPhone() as android:
        yield at, android


@pytest.fixture
def channel_app(fakes: Fakes, db_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The gateway with every channel connected to a fake."""
    app = make_stack_app(db_url, None, tmp_path, **channel_settings(*fakes))
    yield app
    svc(app).engine.dispose()


@pytest.fixture(params=CHANNELS)
def phone(request: pytest.FixtureRequest, channel_app: Flask, fakes: Fakes) -> Phone:
    """A supporter's phone that talks to channel_app through one channel's whole way in and out."""
    return Phone(channel_app, wire=wire(request.param, *fakes))

A = "+265991234567"
B = "+265881234567"
H = "+50499123456"


def contact(app: Flask, number: str) -> Contact:
    with svc(app).sessions() as s:
        return s.scalars(select(Contact).where(number_is(s, number))).one()


def reports(app: Flask) -> list[Report]:
    with svc(app).sessions() as s:
        return list(s.scalars(select(Report).order_by(Report.id)))


def test_join_in_english(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {A} > JOIN
        {A} < Our Network: you joined our SMS alerts. Text STOP any time to end, HELP for help. What is your name? (or SKIP)
        {A} > Chikondi Banda
        {A} < Where do you live? Send your district, e.g. Zomba.
        {A} > kwathu
        {A} < We did not find that place. Send your district name, e.g. Zomba or Choluteca.
        {A} > zomb
        {A} < What matters to you? Reply with numbers: 1 Health 2 Farming 3 Water 4 Education 5 Safety
        {A} > 1 3
        {A} < Welcome! You will get alerts for Zomba. Text REPORT to tell us if a service came, STOP to end.
    """)
    c = contact(channel_app, A)
    assert (c.name, c.place, c.language, c.status, c.tags) == ("Chikondi Banda", "Zomba", "en", "active",
                                                              ["health", "water"])
    assert c.consent_at is not None


def test_join_in_chichewa_with_skip_and_typo(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {A} > lowa
        {A} < Our Network: mwalowa mu mauthenga athu...
        {A} > dumpha
        {A} < Mumakhala kuti? Tumizani dzina la boma lanu, mwachitsanzo Zomba.
        {A} > nkhatabay
        {A} < Mumakonda chiyani? Yankhani ndi manambala: 1 Thanzi 2 Ulimi 3 Madzi 4 Maphunziro 5 Chitetezo
        {A} > madzi
        {A} < Takulandirani! Mudzalandira mauthenga a Nkhata Bay...
    """)
    c = contact(channel_app, A)
    assert (c.name, c.place, c.language) == (None, "Nkhata Bay", "ny")


def test_join_in_spanish_from_honduras(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {H} > Unirme!
        {H} < Our Network: se unio a nuestras alertas SMS. ALTO para salir, AYUDA para ayuda. ¿Como se llama? (o SALTAR)
        {H} > Maria
        {H} < ¿Donde vive? Envie su departamento, por ejemplo Choluteca.
        {H} > francisco morazan
        {H} < ¿Que le interesa?...
        {H} > salud, seguridad
        {H} < ¡Bienvenida! Recibira alertas de Francisco Morazán. REPORTE para contarnos si llego un servicio, ALTO para salir.
    """)
    c = contact(channel_app, H)
    assert (c.language, c.place, c.tags, c.country) == ("es", "Francisco Morazán", ["health", "safety"], "HN")


def test_rejoin_updates_answers(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {A} > JOIN
        {A} < Our Network: you joined...
        {A} > Chikondi
        {A} < Where do you live?...
        {A} > Zomba
        {A} < What matters to you?...
        {A} > skip
        {A} < Welcome! You will get alerts for Zomba...
        {A} > join
        {A} < Our Network: you joined...
        {A} > Chikondi B.
        {A} < Where do you live?...
        {A} > Blantyre
        {A} < What matters to you?...
        {A} > 2
        {A} < Welcome! You will get alerts for Blantyre...
    """)
    c = contact(channel_app, A)
    assert (c.name, c.place, c.tags) == ("Chikondi B.", "Blantyre", ["farming"])


def test_report_in_english_step_by_step_keeping_the_name(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {A} > REPORT NAME
        {A} < Which service? 1 Clinic 2 Fertilizer 3 Water 4 School 5 Other
        {A} > 1
        {A} < Where? Reply with your district, e.g. Zomba.
        {A} > Zomba
        {A} < Did it arrive? 1 Yes 2 No 3 Partly
        {A} > 3
        {A} < Any details, e.g. what was missing? Or reply SKIP.
        {A} > only one nurse for 200 women
        {A} < Thank you. Report * is recorded with your name. Text STATUS * for news. Your voice makes services come.
    """)
    [r] = reports(channel_app)
    assert (r.service, r.place, r.delivered, r.details, r.anonymous, r.country) == (
        "clinic", "Zomba", "partly", "only one nurse for 200 women", False, "MW")
    assert r.contact_id == contact(channel_app, A).id and len(r.ref) == 6


def test_report_other_service_branch_in_chichewa(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {B} > LIPOTI
        {B} < Ntchito iti? 1 Chipatala 2 Feteleza 3 Madzi 4 Sukulu 5 Zina
        {B} > 5
        {B} < Ndi ntchito yanji? Yankhani mwachidule.
        {B} > mankhwala a ana
        {B} < Kuti? Tumizani dzina la boma, mwachitsanzo Zomba.
        {B} > Mangochi
        {B} < Kodi inafika? 1 Inde 2 Ayi 3 Pang'ono
        {B} > ayi
        {B} < Pali zina...
        {B} > dumpha
        {B} < Zikomo. Lipoti * lalembedwa popanda dzina lanu. Tumizani ZAKE * kuti mudziwe zambiri. Mawu anu amabweretsa ntchito.
    """)
    [r] = reports(channel_app)
    assert (r.service, r.service_detail, r.place, r.delivered, r.details, r.anonymous, r.contact_id) == (
        "other", "mankhwala a ana", "Mangochi", "no", None, True, None)


def test_one_sms_report_in_spanish_is_one_reply_and_anonymous(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {H} > DENUNCIA agua Cortes no el pozo esta seco
        {H} < Gracias. Su reporte * quedo registrado sin su nombre. Envie ESTADO * para saber mas. Su voz trae los servicios.
    """)
    [r] = reports(channel_app)
    assert (r.service, r.place, r.delivered, r.details, r.anonymous, r.contact_id) == (
        "water", "Cortés", "no", "el pozo esta seco", True, None)
    assert (r.created_at.hour, r.created_at.minute) == (0, 0)  # only the day is kept


def test_one_sms_anonymous_report_leaves_no_trace(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {H} > DENUNCIA agua Cortes no el pozo esta seco
        {H} < Gracias. Su reporte * quedo registrado...
    """)
    with svc(channel_app).sessions() as s:
        bodies = list(s.scalars(select(Message.body)))
    assert bodies and all(b is None for b in bodies)  # neither what they wrote nor the reference


def test_one_sms_report_with_everything_but_details(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {A} > REPORT CLINIC ZOMBA NO
        {A} < Thank you. Report * is recorded without your name. Text STATUS * for news. Your voice makes services come.
        {A} > REPORT NAME water Zomba yes nurse absent
        {A} < Thank you. Report * is recorded with your name...
    """)
    # Report ids are random (no creation order to match against a phone's traffic): tell them apart.
    first, second = sorted(reports(channel_app), key=lambda r: not r.anonymous)
    assert (first.service, first.place, first.delivered, first.details, first.anonymous) == (
        "clinic", "Zomba", "no", None, True)
    assert (second.service, second.details, second.anonymous, second.contact_id) == (
        "water", "nurse absent", False, contact(channel_app, A).id)


def test_a_report_missing_an_answer_asks_for_it(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {A} > REPORT CLINIC ZOMBA
        {A} < Did it arrive? 1 Yes 2 No 3 Partly
        {A} > no
        {A} < Any details, e.g. what was missing? Or reply SKIP.
        {A} > nurse absent
        {A} < Thank you. Report * is recorded without your name...
    """)
    [r] = reports(channel_app)
    assert (r.service, r.place, r.delivered, r.details, r.anonymous) == ("clinic", "Zomba", "no", "nurse absent", True)


def test_a_long_other_service_is_cut_to_its_column(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {A} > REPORT OTHER {"medicine for the children " * 12}
        {A} < Where? Reply with your district, e.g. Zomba.
        {A} > Zomba
        {A} < Did it arrive?...
        {A} > no
        {A} < Any details...
        {A} > skip
        {A} < Thank you. Report * is recorded without your name...
    """)
    [r] = reports(channel_app)
    assert r.service == "other" and len(r.service_detail) <= 200
    assert r.service_detail.startswith("medicine for the children medicine")


def test_stop_mid_flow_then_silence_until_start(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {A} > REPORT
        {A} < Which service?...
        {A} > STOP
        {A} < You will get no more messages from Our Network. Text START to join again.
        {A} > 1
        {A} <
        {A} > REPORT
        {A} <
        {A} > stop
        {A} <
        {A} > START
        {A} < Welcome back to Our Network...
        {A} > 1
        {A} < Sorry, we did not understand...
    """)
    assert contact(channel_app, A).status == "active"


def test_stop_from_unknown_number_is_kept_and_join_reactivates(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {H} > BAJA
        {H} < Ya no recibira mensajes de Our Network. Envie INICIO para volver.
        {H} > hola
        {H} <
        {H} > AYUDA
        {H} < Our Network: alertas y reportes de servicios por SMS...
        {H} > ALTA
        {H} < Our Network: se unio a nuestras alertas SMS...
    """)
    assert contact(channel_app, H).status == "active"


def test_expiry_and_help_and_rights(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {A} > REPORT
        {A} < Which service?...
        {A} > help
        {A} < Our Network: alerts and service reports by SMS...
        {A} > 2
        {A} < Where? Reply with your district, e.g. Zomba.
        ~ 25h
        {A} > Zomba
        {A} < Your last conversation timed out...
        {A} > rights
        {A} < Your rights: public services are for everyone...
        {A} > ufulu
        {A} < Ufulu wanu:...
        {A} > derechos
        {A} < Sus derechos:...
    """)
    assert reports(channel_app) == []


def test_unknown_text_goes_to_inbox_with_one_hint_a_day(channel_app: Flask, phone: Phone) -> None:
    phone.run(f"""
        {A} > Hello, the clinic did not come
        {A} < Sorry, we did not understand. Text JOIN to join, REPORT to report a service, HELP for help.
        {A} > are you there?
        {A} <
        ~ 25h
        {A} > hello?
        {A} < Sorry, we did not understand...
    """)
    with svc(channel_app).sessions() as s:
        inbox = list(s.scalars(select(Message.body).where(Message.inbox_status == "open").order_by(Message.id)))
    assert inbox == ["Hello, the clinic did not come", "are you there?", "hello?"]


def test_gives_up_kindly_after_two_reasks(phone: Phone) -> None:
    phone.run(f"""
        {A} > REPORT
        {A} < Which service?...
        {A} > banana
        {A} < Which service?...
        {A} > mango
        {A} < Which service?...
        {A} > papaya
        {A} < Sorry, we could not understand. Text REPORT to start again or HELP for help.
        {A} > 1
        {A} < Sorry, we did not understand...
    """)


def test_trigger_keyword_mid_flow_starts_that_flow(phone: Phone) -> None:
    phone.run(f"""
        {A} > REPORT
        {A} < Which service?...
        {A} > JOIN
        {A} < Our Network: you joined...
    """)
