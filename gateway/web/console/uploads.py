"""Console: what the CSV import pages share (supporters, officials): the form, the file's text, and
the languages and places a line may name, even while the flow files are broken."""
from __future__ import annotations

from collections.abc import Iterable

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired

from gateway import services
from gateway.core.places import Gazetteer, GazetteerError, load_gazetteers


class ImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired(_l("Choose a CSV file to import."))])


def languages() -> tuple[str, ...]:
    """The languages flows/system.yaml declares (none while the flow files are broken)."""
    flow_set = services().flow_set
    return flow_set.languages if flow_set is not None else ()


def gazetteers() -> Iterable[Gazetteer]:
    """The places a line may name: the loaded flows', else flows/places/ read on its own."""
    svc = services()
    if svc.flow_set is not None:
        return svc.flow_set.gazetteers.values()
    try:
        return load_gazetteers(svc.settings.flows_dir / "places").values()
    except GazetteerError:
        return []


def decode(data: bytes) -> tuple[str, str | None]:
    """The file's text, and a notice when it was not UTF-8 (spreadsheets on Windows save their own)."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), (
            _("The file was not saved as UTF-8, so it was read as Windows (Excel) text: "
              "check that names with accents came out right."))
