"""Blueprints: the organizers' console, the JSON API, health."""
