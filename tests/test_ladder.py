"""The case ladder (pure): only the moves it lists, and every status can be left except by skipping back."""
from __future__ import annotations

import pytest

from gateway.core import ladder
from gateway.models import CaseStatus


def test_the_ladder_knows_every_status_the_database_may_hold() -> None:
    assert set(ladder.STATUSES) == {s.value for s in CaseStatus} == set(ladder.MOVES)


@pytest.mark.parametrize(("current", "to"), [
    ("open", "sent"), ("sent", "acknowledged"), ("acknowledged", "promised"), ("promised", "resolved"),
    ("sent", "overdue"), ("overdue", "sent"), ("resolved", "disputed"), ("disputed", "sent"), ("closed", "open")])
def test_the_moves_of_the_ladder_are_allowed(current: str, to: str) -> None:
    assert ladder.can_move(current, to)


@pytest.mark.parametrize(("current", "to"), [
    ("open", "resolved"), ("resolved", "promised"), ("closed", "resolved"), ("open", "disputed"),
    ("acknowledged", "sent"), ("sent", "disputed")])
def test_a_case_never_skips_or_goes_back_on_its_own(current: str, to: str) -> None:
    assert not ladder.can_move(current, to)


def test_every_status_but_closed_can_be_closed_by_an_organizer() -> None:
    assert all(ladder.can_move(s, "closed") for s in ladder.STATUSES if s != "closed")
