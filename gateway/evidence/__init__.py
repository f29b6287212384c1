"""Evidence: promised services, the checks that ask supporters whether they came, and corroboration.

`schedules` records what was promised (organizers in the console, the API, the CLI; an official's
PROMISE). `checks.tick` (every minute in the workers, or `flask checks tick`) opens a check for each
due date and asks a rotating sample of the place's supporters after the schedule's local time;
`answers` turns their replies into reports and opens a case on enough "no"; `checks.corroborate`
asks a few other supporters whether a new case's reports are right and labels them. `summary`
drafts the one SMS that tells a place what its reports achieved. The rules are pure, in
gateway/core/schedule.py. The one-page brief: `figures` reads, `render` draws (HTML, SVG, PDF),
`words` holds its wording, `briefs` and `brief_cli` are its doors (counting: gateway/core/brief.py).
docs/evidence.md is the manual.
"""
