"""WSGI entry for gunicorn and `flask --app app`."""
from gateway import create_app

app = create_app()
