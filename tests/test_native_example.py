"""The native-kernel example (examples/native-kernel/): its C, built from the repository with the
system compiler, passes every check of the three ops it provides, and its int16-accumulator build
fails BL-2 with the `int16-accumulator` fingerprint while its quantizers pass. A missing compiler
fails these tests: the example is the contract's promise to C kernel authors, so it must be proven.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import pytest
import torch

from qcheck.checks import CHECKS
from qcheck.grade import BackendGrade, grade_backend
from qcheck.quantizers import numpy_twin

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SRC = ROOT / "examples" / "native-kernel" / "src"
OPS = ("b158_quantize", "act_quantize", "bitlinear")
PROFILE = "quick"
GOOD = "qcheck_native_example.backend:Backend"
INT16 = "qcheck_native_example.backend:Int16Backend"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The example's backend module imported from the repository, with both libraries compiled by
    `cc` into a temporary cache that the grading workers (spawned: they inherit sys.path and the
    environment) load instead of building their own."""
    cc = shutil.which("cc")
    assert cc is not None, "no C compiler `cc` on PATH: the native-kernel example cannot be built"
    cache = tmp_path_factory.mktemp("native-kernel-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLE_SRC))
        patch.setenv("QCHECK_NATIVE_EXAMPLE_CACHE", str(cache))
        patch.setenv("CC", cc)
        build = importlib.import_module("qcheck_native_example.build")
        assert Path(str(build.__file__)).resolve().is_relative_to(EXAMPLE_SRC), build.__file__
        for variant in ("int32", "int16"):
            library = build.build(variant, compiler=cc, directory=cache)
            assert library.is_file() and library.parent == cache
        yield importlib.import_module("qcheck_native_example.backend")


@pytest.fixture(scope="module")
def graded(example: ModuleType) -> dict[str, BackendGrade]:
    return {spec: grade_backend(spec, profile=PROFILE, seed=0) for spec in (GOOD, INT16)}


def _verdicts(grade: BackendGrade) -> dict[str, str]:
    return {o.result.key: o.verdict for o in grade.outcomes}


def test_native_c_provides_the_three_ops_and_passes_every_check_of_them(graded: dict[str, BackendGrade]) -> None:
    grade = graded[GOOD]
    assert grade.load_error is None
    assert grade.name == "native-c"
    assert sorted(grade.provided) == sorted(OPS)
    expected_keys = {c.key for c in CHECKS if c.op in OPS}
    verdicts = _verdicts(grade)
    assert set(verdicts) == expected_keys
    failures = [f"{o.result.key}: {o.result.message}" for o in grade.outcomes if o.verdict != "PASS"]
    assert not failures, "\n".join(failures)
    assert grade.passed


def test_int16_accumulator_fails_bl2_fingerprinted_while_its_quantizers_pass(graded: dict[str, BackendGrade]) -> None:
    grade = graded[INT16]
    assert grade.load_error is None and not grade.passed
    outcome = next(o for o in grade.outcomes if o.result.key == "bitlinear:BL-2")
    assert outcome.verdict == "FAIL", outcome.result.message
    assert "int16-accumulator" in outcome.fingerprints
    assert "int16 accumulator" in outcome.result.message
    quantizer_verdicts = {k: v for k, v in _verdicts(grade).items() if not k.startswith("bitlinear:")}
    assert quantizer_verdicts and set(quantizer_verdicts.values()) == {"PASS"}, quantizer_verdicts


def test_float64_activations_are_rounded_on_the_exact_quotient(example: ModuleType) -> None:
    # x = fl(1.5/127) next to a = 1: x * 127 = 1.5 - 2e-17, which float64 arithmetic rounds onto the
    # tie 1.5 (half-even: 2); the exact quotient is below it (1). Likewise 8.5/127 lies above (9).
    x = torch.tensor([1.0, 1.5 / 127, -1.5 / 127, 8.5 / 127, 127.0 / 127], dtype=torch.float64)
    codes, scale = example.Backend().act_quantize(x)
    exact_codes, exact_scale = numpy_twin.act_quantize(x.numpy())
    assert codes.tolist() == exact_codes.tolist() == [127, 1, -1, 9, 127]
    assert scale.dtype == torch.float64 and scale.item() == float(exact_scale.reshape(-1)[0])


def test_b158_gamma_is_the_exact_mean_rounded_once_even_at_the_ends_of_the_range(example: ModuleType) -> None:
    backend = example.Backend()
    for values, dtype in (
        ([1.7976931348623157e308] * 3 + [5e-324, 0.0], torch.float64),  # a float64 sum would overflow
        ([3.4e38] * 4 + [1e-45], torch.float32),  # a float32 sum would overflow
        ([0.3] * 16, torch.float32),  # a float32 mean is not 0.3
        ([0.1, 0.2, 0.7, 1e-30, 5e-324], torch.float64),
    ):
        w = torch.tensor(values, dtype=dtype)
        codes, gamma = backend.b158_quantize(w)
        exact = sum((abs(Fraction(float(v))) for v in w.tolist()), Fraction(0)) / len(values)
        want = torch.tensor(float(exact), dtype=torch.float64).to(dtype).clamp(min=1e-5)
        assert gamma.dtype == dtype and gamma.item() == want.item(), values
        assert codes.tolist() == numpy_twin.b158_quantize(w.numpy())[0].tolist()


def test_a_missing_compiler_is_a_build_error_that_names_it(example: ModuleType) -> None:
    build = sys.modules["qcheck_native_example.build"]
    with pytest.raises(build.BuildError, match="no-such-cc"):
        build.build("int32", compiler="no-such-cc")
