"""Every word the brief prints, per language, in one place (ready to move to the console's Babel catalogues).

A missing key in a language falls back to English; tests/test_brief.py checks Spanish has them all.
"""
from __future__ import annotations

from datetime import date

LANGUAGES = ("en", "es")

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Service delivery in {place}",
        "case_title": "Case {ref}: {service} in {place}",
        "subtitle": "Evidence brief for {month}",
        "case_subtitle": "Evidence brief, as of {day}",
        "generated": "Made {when} UTC",
        "cite": "Cite as",
        "promised": "Promised against delivered",
        "promised_lead": "Each bar is one month; each part of it is one due date the service was promised.",
        "came": "{service}: came on {delivered} of {due} due dates in {month}",
        "came_one": "{service}: came on {delivered} of 1 due date in {month}",
        "more_services": "Also promised, not charted here: {names}",
        "reported": "Reported by supporters in {month}:",
        "reported_line": "{service} {n} ({yes} came, {no} did not, {partly} partly)",
        "came_six": "{delivered} of {due} over the six months",
        "nothing_due": "No service was scheduled for {place} in these six months.",
        "nothing_due_month": "{service}: nothing was due in {month}",
        "delivered": "came", "partly": "partly", "not_delivered": "did not come",
        "no_answer": "no answer", "unchecked": "not checked",
        "cases": "Cases raised with officials",
        "cases_counts": "{open} open, {overdue} overdue, {resolved} resolved, {closed} closed",
        "no_cases": "No case was open in {month}.",
        "ref": "Case", "service": "Service", "state": "Now", "opened": "Opened", "days": "Days",
        "asked": "Asked (official, date)", "nobody_asked": "not sent yet",
        "state_open": "open", "state_overdue": "OVERDUE", "state_resolved": "resolved", "state_closed": "closed",
        "more_cases": "and {n} more (see the console)",
        "more_officials": "and {n} more officials (see the console)",
        "earlier": "{n} earlier;",
        "promised_for": "promised for {day}",
        "officials": "How officials answered",
        "official": "Official", "sent": "Cases sent", "answered": "Answered", "rate": "Rate",
        "median": "Median time to answer",
        "too_few": "too few cases ({n}) to be fair",
        "hours": "{n} h", "days_n": "{n} days",
        "no_officials": "No case was sent to an official in these six months.",
        "voices": "In their words",
        "voices_none": "No words can be quoted safely this month.",
        "method": "How these figures were gathered",
        "method_text": (
            "Due dates come from the services promised to {place} (recorded schedules and officials' promises). "
            "On each due date the gateway asked a sample of supporters in {place} by SMS whether the service came: "
            "{checks} checks, {asked} supporters asked, {answered} answered ({share}), {from_} to {to}. "
            "A due date counts as came, partly or did not come by its answers; no answer and not checked are "
            "shown, never guessed. {reports} reports came from {place} in {month} ({from_checks} of them "
            "answers to checks)."),
        "verified_text": "{labelled} reports were checked with other supporters: {verified} verified, "
                         "{contested} contested, {unverified} unverified ({share} verified).",
        "verified_none": "No report of the month has been checked with other supporters yet.",
        "silent": "Silent: {supporters} supporters in {place} sent no report this month.",
        "silent_checks": "Silent: {checks} checks were asked in {place} this month and no one answered.",
        "privacy": "No reporter is named. Quotes have names and numbers removed (…) and come only from a "
                   "service with at least {n} reports in the month.",
        "reproduce": "Every figure can be recounted from the gateway's reports CSV export (check_id, due_on, "
                     "verification).",
        "case_status": "Status",
        "case_reports": "{n} reports: {parts}",
        "case_corroborated": "Asking other supporters: {outcome}.",
        "case_not_corroborated": "Not yet checked with other supporters.",
        "verified": "verified", "contested": "contested", "unverified": "unverified",
        "yes": "came", "no": "did not come", "unknown": "no answer",
        "open_for": "open for {n} days", "took": "resolved in {n} days",
        "timeline": "Who was asked, and when",
        "pct": "{n}%",
    },
    "es": {
        "title": "Entrega de servicios en {place}",
        "case_title": "Caso {ref}: {service} en {place}",
        "subtitle": "Informe de evidencia de {month}",
        "case_subtitle": "Informe de evidencia, al {day}",
        "generated": "Hecho el {when} UTC",
        "cite": "Citar como",
        "promised": "Lo prometido frente a lo entregado",
        "promised_lead": "Cada barra es un mes; cada parte, una fecha en que se prometió el servicio.",
        "came": "{service}: llegó {delivered} de {due} fechas prometidas en {month}",
        "came_one": "{service}: llegó {delivered} de 1 fecha prometida en {month}",
        "more_services": "También prometido, sin gráfico aquí: {names}",
        "reported": "Reportado por la gente en {month}:",
        "reported_line": "{service} {n} ({yes} llegó, {no} no llegó, {partly} en parte)",
        "came_six": "{delivered} de {due} en los seis meses",
        "nothing_due": "No se programó ningún servicio para {place} en estos seis meses.",
        "nothing_due_month": "{service}: nada estaba previsto en {month}",
        "delivered": "llegó", "partly": "en parte", "not_delivered": "no llegó",
        "no_answer": "sin respuesta", "unchecked": "sin verificar",
        "cases": "Casos presentados a autoridades",
        "cases_counts": "{open} abiertos, {overdue} vencidos, {resolved} resueltos, {closed} cerrados",
        "no_cases": "Ningún caso estuvo abierto en {month}.",
        "ref": "Caso", "service": "Servicio", "state": "Ahora", "opened": "Abierto", "days": "Días",
        "asked": "A quién se pidió (autoridad, fecha)", "nobody_asked": "aún no enviado",
        "state_open": "abierto", "state_overdue": "VENCIDO", "state_resolved": "resuelto", "state_closed": "cerrado",
        "more_cases": "y {n} más (ver la consola)",
        "more_officials": "y {n} autoridades más (ver la consola)",
        "earlier": "{n} antes;",
        "promised_for": "prometido para el {day}",
        "officials": "Cómo respondieron las autoridades",
        "official": "Autoridad", "sent": "Casos enviados", "answered": "Respondidos", "rate": "Tasa",
        "median": "Tiempo mediano de respuesta",
        "too_few": "muy pocos casos ({n}) para ser justos",
        "hours": "{n} h", "days_n": "{n} días",
        "no_officials": "No se envió ningún caso a una autoridad en estos seis meses.",
        "voices": "En sus palabras",
        "voices_none": "Este mes no hay palabras que se puedan citar sin riesgo.",
        "method": "Cómo se reunieron estas cifras",
        "method_text": (
            "Las fechas prometidas vienen de los servicios comprometidos para {place} (calendarios registrados y "
            "promesas de autoridades). En cada fecha, la plataforma preguntó por SMS a una muestra de personas de "
            "{place} si llegó el servicio: {checks} consultas, {asked} personas consultadas, {answered} respondieron "
            "({share}), del {from_} al {to}. Cada fecha cuenta como llegó, en parte o no llegó según las respuestas; "
            "sin respuesta y sin verificar se muestran, nunca se suponen. Llegaron {reports} reportes de {place} "
            "en {month} ({from_checks} de ellos respuestas a consultas)."),
        "verified_text": "{labelled} reportes se contrastaron con otras personas: {verified} verificados, "
                         "{contested} refutados, {unverified} sin verificar ({share} verificados).",
        "verified_none": "Ningún reporte del mes se ha contrastado aún con otras personas.",
        "silent": "Silencio: {supporters} personas inscritas en {place} no enviaron ningún reporte este mes.",
        "silent_checks": "Silencio: se hicieron {checks} consultas en {place} este mes y nadie respondió.",
        "privacy": "No se nombra a quien reporta. Las citas no llevan nombres ni números (…) y solo vienen de un "
                   "servicio con al menos {n} reportes en el mes.",
        "reproduce": "Cada cifra puede recontarse con la exportación CSV de reportes de la plataforma "
                     "(check_id, due_on, verification).",
        "case_status": "Estado",
        "case_reports": "{n} reportes: {parts}",
        "case_corroborated": "Consulta a otras personas: {outcome}.",
        "case_not_corroborated": "Aún no contrastado con otras personas.",
        "verified": "verificado", "contested": "refutado", "unverified": "sin verificar",
        "yes": "llegó", "no": "no llegó", "unknown": "sin respuesta",
        "open_for": "abierto hace {n} días", "took": "resuelto en {n} días",
        "timeline": "A quién se pidió, y cuándo",
        "pct": "{n} %",
    },
}

MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"),
}

SERVICES = {
    "en": {"clinic": "Mobile clinic", "fertilizer": "Fertilizer", "water": "Water", "school": "School"},
    "es": {"clinic": "Clínica móvil", "fertilizer": "Fertilizante", "water": "Agua", "school": "Escuela"},
}


class Words:
    """The brief's words in one language: w('came', service=..., ...)."""

    def __init__(self, language: str) -> None:
        self.language = language if language in WORDS else "en"

    def __call__(self, key: str, **fields: object) -> str:
        if fields.get("due") == 1 and f"{key}_one" in WORDS["en"]:
            key = f"{key}_one"  # the one plural that reads wrong otherwise: "1 due dates"
        text = WORDS[self.language].get(key) or WORDS["en"][key]
        return text.format(**fields) if fields else text

    def month(self, first: date) -> str:
        """'November 2026' / 'noviembre de 2026'."""
        name = MONTHS[self.language][first.month - 1]
        return f"{name} de {first.year}" if self.language == "es" else f"{name} {first.year}"

    def short_month(self, key: str) -> str:
        """'2026-11' -> 'Nov' / 'nov'."""
        return MONTHS[self.language][int(key[5:7]) - 1][:3]

    def day(self, d: date) -> str:
        """'3 Nov 2026' / '3 nov 2026'."""
        return f"{d.day} {MONTHS[self.language][d.month - 1][:3]} {d.year}"

    def service(self, key: str) -> str:
        return SERVICES[self.language].get(key, key.capitalize())

    def services(self, records: object) -> str:
        """Services' names, comma-separated (records with a .service)."""
        return ", ".join(self.service(r.service) for r in records)  # type: ignore[attr-defined]

    def percent(self, value: float | None) -> str:
        return "–" if value is None else self("pct", n=round(value * 100))
