"""Hypothesis settings profiles shared by qcheck's own tests and its conformance runs.

``ci`` is deterministic (derandomized, no example database): the same commit and seed give the
same verdict.  ``quick`` is for local iteration, ``thorough`` for nightly runs.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

PROFILES: dict[str, dict[str, object]] = {
    "quick": {"max_examples": 40},
    "ci": {"max_examples": 100},
    "thorough": {"max_examples": 2000},
}
DEFAULT_PROFILE = "ci"

_COMMON: dict[str, object] = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "print_blob": False,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}


def register_profiles() -> None:
    """Register ``qcheck-quick``, ``qcheck-ci`` and ``qcheck-thorough`` with Hypothesis."""
    for name, values in PROFILES.items():
        settings.register_profile(f"qcheck-{name}", **{**_COMMON, **values})  # type: ignore[arg-type]


def profile_settings(name: str) -> settings:
    """The settings object of profile ``name`` (``quick``, ``ci`` or ``thorough``)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    register_profiles()
    return settings.get_profile(f"qcheck-{name}")
