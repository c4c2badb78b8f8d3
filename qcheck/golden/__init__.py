"""Golden vectors for kernels in other languages: every op on every edge family, as ``.npy``
files with the reference's outputs and a one-case-per-line ``manifest.json`` (``reference/``).

``python -m qcheck.golden`` (or ``qcheck golden``) regenerates the set; ``--check`` recomputes it
in memory and fails naming every drifting case.  Modules: ``cases`` (what is in the set),
``inputs`` (edge-family inputs), ``arrays`` (.npy encoding), ``store`` (writing and checking),
``cli``.  This package imports nothing on its own, so ``qcheck --help`` stays fast; the format is
described in reference/README.md.
"""
