"""Logging: configured once by create_app, at LOG_LEVEL, one line per event, numbers masked."""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from gateway import logs


@pytest.fixture
def fresh_root() -> Iterator[logging.Logger]:
    """The root logger without the gateway's handler, put back as it was afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.handlers = [h for h in handlers if not getattr(h, logs._MARK, False)]
    yield root
    root.handlers, root.level = handlers, level


def test_an_info_line_of_a_module_is_logged_once_the_app_is_built(app, caplog) -> None:
    logging.getLogger("gateway.outbound.jobs").info("reconcile: %d settled", 3)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records
            if r.name == "gateway.outbound.jobs"] == [("gateway.outbound.jobs", "INFO", "reconcile: 3 settled")]


def test_log_level_warning_drops_info_and_configuring_twice_adds_no_handler(fresh_root, caplog) -> None:
    logs.configure("WARNING")
    logs.configure("DEBUG")  # a second app in the same process changes nothing
    assert sum(getattr(h, logs._MARK, False) for h in fresh_root.handlers) == 1
    assert fresh_root.level == logging.WARNING
    logging.getLogger("gateway.outbound.jobs").info("not shown")
    logging.getLogger("gateway.outbound.jobs").warning("shown")
    assert [r.getMessage() for r in caplog.records] == ["shown"]


def test_a_number_in_a_line_is_masked_and_the_line_reads_time_level_logger_message(fresh_root, caplog) -> None:
    logs.configure("INFO")
    logging.getLogger("gateway.channels").warning("send to %s failed (+1 555 010 9999 too)", "+265991234567")
    (record,) = [r for r in caplog.records if r.name == "gateway.channels"]
    assert "+265991234567" not in caplog.text and "555 010 9999" not in caplog.text
    assert record.getMessage() == "send to +26…67 failed (+1 …99 too)"
    (ours,) = [h for h in fresh_root.handlers if getattr(h, logs._MARK, False)]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING gateway\.channels send to \+26…67 failed.*",
                        ours.format(record))


def test_ids_and_counts_are_not_taken_for_numbers() -> None:
    assert logs.mask_numbers("message 12345678901 of contact 42: 3 replies") == "message 12345678901 of contact 42: 3 replies"
