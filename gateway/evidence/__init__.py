"""Evidence for decision makers: schedules, delivery checks, corroboration, and the one-page brief."""
