"""Supporters, organizers and what is recorded about them."""
