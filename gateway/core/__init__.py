"""Pure core: no Flask, SQLAlchemy or Redis here; tested with no app."""
