"""Stand-ins for external services, served on loopback for tests and benchmarks."""
from __future__ import annotations

from tests.fakes.twilio_api import FakeTwilio

__all__ = ["FakeTwilio"]
