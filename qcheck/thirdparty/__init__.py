"""Adapters that expose third-party BitNet code through the backend contract, so that qcheck grades
implementations no one here wrote: HF transformers (``hf_transformers``) and gguf-py (``gguf_py``).

The adapters only translate arguments and results; every number comes from the third-party
function.  ``python -m qcheck.thirdparty`` grades them all and writes ``reports/thirdparty.md``.
"""

from __future__ import annotations

ADAPTERS: dict[str, str] = {
    "hf-transformers": "qcheck.thirdparty.hf_transformers:HfTransformers",
    "gguf-tq2_0": "qcheck.thirdparty.gguf_py:GgufTq2_0",
    "gguf-tq1_0": "qcheck.thirdparty.gguf_py:GgufTq1_0",
}
"""Entry-point name -> ``module:attr`` (the same pairs as ``pyproject.toml``'s ``qcheck.backends``)."""

SOURCES: tuple[str, ...] = ("transformers", "gguf", "torch", "numpy")
"""The distributions whose versions a third-party report names."""
