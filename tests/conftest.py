"""Shared pytest set-up: qcheck's Hypothesis profiles, with ``qcheck-ci`` as the default."""

from __future__ import annotations

import pytest
from hypothesis import settings

from qcheck.profiles import register_profiles

# At import time, so that ``--hypothesis-profile=qcheck-<name>`` can name them.
register_profiles()


def pytest_configure(config: pytest.Config) -> None:
    """Load ``qcheck-ci`` unless a profile was chosen with ``--hypothesis-profile``."""
    if not config.getoption("hypothesis_profile", default=None):
        settings.load_profile("qcheck-ci")
