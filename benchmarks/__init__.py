"""qcheck's performance benchmarks (issue 6): ``nox -s bench``, never part of the test run.

``QCHECK_BENCH_SCALE=small`` runs a smoke version on small tensors; the default is the issue's
sizes.  Results go to ``reports/bench/`` (``reports/bench/small/`` for the smoke run).
"""
