"""Backends for the isolation tests: they crash, hang, mutate, alias, or behave."""
