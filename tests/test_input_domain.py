"""SPEC IN-6: a declared input domain (row_multiple, out_features_multiple) pads drawn inputs, so a
block kernel is graded on the shapes it holds instead of erroring on every other shape."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
import torch

from qcheck.arguments import Args
from qcheck.conventions import DEFAULT, GGML_TQ, Conventions, from_declaration
from qcheck.grade import grade_backend
from qcheck.input_domain import fit
from qcheck.quantizers import b158_quantize, bitlinear

BLOCKS = GGML_TQ.replace(row_multiple=256)


def test_tensors_are_zero_padded_along_the_last_dimension() -> None:
    x = torch.arange(1.0, 8.0).reshape(1, 7)
    padded = fit(x, "b158_quantize", BLOCKS)
    assert padded.shape == (1, 256)
    assert torch.equal(padded[:, :7], x) and not bool(padded[:, 7:].any())
    assert fit(torch.tensor(2.0), "act_quantize", BLOCKS).shape == (256,)
    assert fit(x, "b158_quantize", DEFAULT) is x  # nothing declared: untouched
    codes = torch.ones(3, dtype=torch.int8)
    assert fit(codes, "pack_ternary", BLOCKS) is codes  # the layout governs packing shapes


def test_bitlinear_arguments_are_padded_consistently() -> None:
    conventions = DEFAULT.replace(row_multiple=8, out_features_multiple=4)
    x = torch.randn(2, 5)
    w = torch.ones(3, 5, dtype=torch.int8)
    args = fit(Args((x, w, torch.tensor(0.5), torch.ones(3))), "bitlinear", conventions)
    assert isinstance(args, Args)
    assert args[0].shape == (2, 8) and args[1].shape == (4, 8) and args[3].shape == (4,)
    y = bitlinear(*args[:3], args[3], conventions)
    assert torch.allclose(y[:, :3], bitlinear(x, w, torch.tensor(0.5), torch.ones(3), conventions))
    assert torch.equal(y[:, 3], torch.zeros(2))  # a padded row has no weights and no bias


def test_the_declaration_is_parsed_and_described() -> None:
    declared = from_declaration({"base": "ggml-tq", "row_multiple": 256})
    assert declared.row_multiple == 256 and "rows-multiple-of=256" in declared.describe()
    with pytest.raises(ValueError):
        Conventions(row_multiple=0)


class _BlockKernel:
    """Raises unless every row is whole 256-blocks, like gguf-py's quantize."""

    name = "block-kernel"

    def b158_quantize(self, w: torch.Tensor) -> Any:
        if w.dim() == 0 or w.shape[-1] % 256:
            raise ValueError(f"rows must be whole 256-blocks, got shape {tuple(w.shape)}")
        return b158_quantize(w, GGML_TQ)


def _grade(conventions: dict[str, Any]) -> dict[str, str]:
    module = types.ModuleType("qcheck_test_block_kernel")
    module.Kernel = type("Kernel", (_BlockKernel,), {"conventions": conventions})  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        grade = grade_backend(f"{module.__name__}:Kernel", profile="quick", isolate=False)
    finally:
        del sys.modules[module.__name__]
    return {o.result.key: o.verdict for o in grade.outcomes}


def test_a_block_kernel_errors_without_the_declaration_and_passes_with_it() -> None:
    undeclared = _grade({"base": "ggml-tq"})
    assert undeclared and all(verdict == "ERROR" for verdict in undeclared.values()), undeclared
    declared = _grade({"base": "ggml-tq", "row_multiple": 256})
    assert declared.keys() == undeclared.keys()
    assert all(verdict == "PASS" for verdict in declared.values()), declared
