"""The isolated backend: crashes, hangs and exceptions in the worker become CheckFailure verdicts,
and mutation, aliasing, gradients and tensor layout cross the process boundary faithfully."""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from qcheck import isolation, quantizers
from qcheck.arguments import Args
from qcheck.backend import BackendLoadError
from qcheck.checks.base import CheckFailure
from qcheck.checks.catalogue import by_key
from qcheck.checks.runner import run_check
from qcheck.conventions import DEFAULT
from qcheck.isolation import BackendInfo, IsolatedBackend

CRASHY = "tests.backends.crashy:crashy_backend"
QUIRKY = "tests.backends.quirky:Quirky"


@pytest.fixture(scope="module")
def crashy() -> Iterator[IsolatedBackend]:
    with IsolatedBackend(CRASHY, call_timeout=2) as backend:
        yield backend


@pytest.fixture(scope="module")
def quirky() -> Iterator[IsolatedBackend]:
    with IsolatedBackend(QUIRKY, call_timeout=10) as backend:
        yield backend


def test_backend_info(crashy: IsolatedBackend) -> None:
    info = crashy.backend
    assert isinstance(info, BackendInfo)
    assert info.name == "crashy"
    assert info.spec == CRASHY
    assert set(info.ops) == {"b158_quantize", "act_quantize", "act_fake_quantize", "b1_quantize", "b1_fake_quantize"}
    assert info.provided == ("b1_quantize", "b1_fake_quantize", "b158_quantize", "act_quantize", "act_fake_quantize")
    assert info.conventions == DEFAULT
    assert info.device == "cpu"
    with pytest.raises(KeyError):
        crashy.implementation("b158_fake_quantize")


def test_crash_is_an_error_and_the_next_call_gets_a_fresh_worker(crashy: IsolatedBackend) -> None:
    quantize = crashy.implementation("b158_quantize")
    small = torch.tensor([0.5, -1.0, 0.1])
    assert torch.equal(quantize(small, DEFAULT)[0], quantizers.b158_quantize(small).codes)
    restarts = crashy.restarts
    big = torch.tensor([0.5, -1.0, 0.1, 2.0])
    with pytest.raises(CheckFailure) as crash:
        quantize(big, DEFAULT)
    assert crash.value.verdict == "ERROR"
    assert "crashed the worker process: SIGSEGV (signal 11)" in crash.value.message
    assert "\n" not in crash.value.message
    # The same input again: the remembered failure at once, no new worker.
    started = time.perf_counter()
    with pytest.raises(CheckFailure) as again:
        quantize(big.clone(), DEFAULT)
    assert again.value.message == crash.value.message
    assert time.perf_counter() - started < 0.5
    assert crashy.restarts == restarts
    # A normal call afterwards starts a new worker and works.
    codes, scale = quantize(small, DEFAULT)
    assert torch.equal(codes, quantizers.b158_quantize(small).codes)
    assert torch.equal(scale, quantizers.b158_quantize(small).scale)
    assert crashy.restarts == restarts + 1


def test_hang_times_out_and_the_worker_is_restarted(crashy: IsolatedBackend) -> None:
    quantize = crashy.implementation("act_quantize")
    started = time.perf_counter()
    with pytest.raises(CheckFailure) as hang:
        quantize(torch.tensor([[1.0, 3.0]]), DEFAULT)
    assert time.perf_counter() - started < 2 + 5
    assert hang.value.verdict == "ERROR"
    assert hang.value.message == ("act_quantize timed out after 2 s (the call was abandoned and the worker restarted)")
    x = torch.tensor([[1.0, -0.5]])
    codes, _ = quantize(x, DEFAULT)
    assert torch.equal(codes, quantizers.act_quantize(x).codes)


def test_backward_that_hangs_raises(crashy: IsolatedBackend) -> None:
    x = torch.tensor([[0.5, -1.0]]).requires_grad_(True)
    out = crashy.implementation("act_fake_quantize")(x, DEFAULT)
    assert out.requires_grad
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"act_fake_quantize backward timed out after 2 s"):
        out.backward(torch.ones_like(out))
    assert time.perf_counter() - started < 2 + 5
    # The graph died with the worker: a second backward says so at once.
    with pytest.raises(RuntimeError, match="its autograd graph is gone"):
        out.backward(torch.ones_like(out))


def test_exception_in_the_backend_is_one_line(crashy: IsolatedBackend) -> None:
    with pytest.raises(CheckFailure) as raised:
        crashy.implementation("b1_fake_quantize")(torch.ones(3), DEFAULT)
    assert raised.value.verdict == "ERROR"
    assert raised.value.message == "b1_fake_quantize raised ValueError: unsupported input (second line of the message)"


def test_giving_up_after_max_restarts(crashy: IsolatedBackend) -> None:
    crashy.crashes["b158_quantize"] = IsolatedBackend.max_restarts
    try:
        with pytest.raises(CheckFailure) as gave_up:
            crashy.implementation("b158_quantize")(torch.ones(2), DEFAULT)
        assert gave_up.value.verdict == "ERROR"
        assert f"the worker crashed {IsolatedBackend.max_restarts} times; giving up on b158_quantize" in (
            gave_up.value.message
        )
    finally:
        crashy.crashes["b158_quantize"] = 0


def test_layout_reaches_the_worker(quirky: IsolatedBackend) -> None:
    layout = quirky.implementation("act_quantize")
    big = torch.arange(24.0).reshape(2, 3, 4)
    for view in (big.transpose(-1, -2), big[..., ::2], big[1, 1:, 1:]):
        strides, (offset, nbytes) = layout(view, DEFAULT)
        assert tuple(strides.tolist()) == view.stride()
        assert int(offset) == view.storage_offset()
        assert int(nbytes) == big.untyped_storage().nbytes()


def test_in_place_modification_reaches_the_caller(quirky: IsolatedBackend) -> None:
    w = torch.tensor([[0.5, -1.0], [0.25, 2.0]])
    before = w.clone()
    codes, _ = quirky.implementation("b1_quantize")(w, DEFAULT)
    assert torch.equal(w, before * 2)
    assert torch.equal(codes, quantizers.b1_quantize(before).codes)
    # Through a strided view: only the view's elements change.
    big = torch.arange(1.0, 9.0).reshape(2, 4)
    view = big[:, ::2]
    quirky.implementation("b1_quantize")(view, DEFAULT)
    assert torch.equal(big, torch.tensor([[2.0, 2.0, 6.0, 4.0], [10.0, 6.0, 14.0, 8.0]]))


def test_mutation_check_sees_the_workers_in_place_change(quirky: IsolatedBackend) -> None:
    result = run_check(by_key("b1_quantize:GEN-1"), quirky.implementation("b1_quantize"), profile="quick")
    assert result.verdict == "FAIL"
    assert "modified its input in place" in result.message


def test_close_stops_the_worker() -> None:
    backend = IsolatedBackend(QUIRKY)
    worker = backend._worker
    assert worker is not None and worker.process.is_alive()
    backend.close()
    assert not worker.process.is_alive()
    with pytest.raises(CheckFailure, match="is closed"):
        backend.implementation("b1_quantize")(torch.ones(2), DEFAULT)


def test_alias_is_flagged(quirky: IsolatedBackend) -> None:
    with pytest.raises(CheckFailure) as alias:
        quirky.implementation("act_fake_quantize")(torch.ones(2, 3), DEFAULT)
    assert alias.value.verdict == "FAIL"
    assert "shares memory with its input" in alias.value.message


def test_unpicklable_result_is_an_error(quirky: IsolatedBackend) -> None:
    with pytest.raises(CheckFailure) as unpicklable:
        quirky.implementation("b158_quantize")(torch.ones(3), DEFAULT)
    assert unpicklable.value.verdict == "ERROR"
    assert "returned a lock" in unpicklable.value.message


def test_gradient_round_trip(quirky: IsolatedBackend) -> None:
    w = torch.tensor([[0.5, -1.0, 0.1], [2.0, -0.3, 0.0]], dtype=torch.float32).requires_grad_(True)
    out = quirky.implementation("b158_fake_quantize")(w, DEFAULT)
    assert out.requires_grad
    assert torch.equal(out.detach(), quantizers.b158_fake_quantize(w.detach()))
    grad = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -7.0]])
    out.backward(grad)
    assert w.grad is not None
    assert torch.equal(w.grad, grad)


def test_detached_output_has_no_gradient(quirky: IsolatedBackend) -> None:
    w = torch.tensor([0.5, -1.0, 0.1]).requires_grad_(True)
    out = quirky.implementation("b1_fake_quantize")(w, DEFAULT)
    assert not out.requires_grad
    assert torch.equal(out, quantizers.b1_fake_quantize(w.detach()))


def test_gradient_check_passes_through_the_worker(quirky: IsolatedBackend) -> None:
    result = run_check(
        by_key("b158_fake_quantize:STE-1"),
        quirky.implementation("b158_fake_quantize"),
        profile="quick",
        max_examples=10,
    )
    assert result.verdict == "PASS", result.message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("tests.backends.crashy:nothing_here", "has no attribute 'nothing_here'"),
        ("tests.backends.crashy:ExitsOnLoad", "loading raised SystemExit: no GPU here"),
        ("tests.backends.crashy:DiesOnLoad", "died while loading the backend: SIGABRT (signal 6)"),
    ],
)
def test_load_errors_are_one_line(spec: str, expected: str) -> None:
    with pytest.raises(BackendLoadError) as error:
        IsolatedBackend(spec)
    message = str(error.value)
    assert expected in message
    assert "\n" not in message
    assert "Traceback" not in message


def test_end_to_end_crash_is_an_error_verdict_and_grading_goes_on() -> None:
    started = time.perf_counter()
    with IsolatedBackend(CRASHY, call_timeout=10) as backend:
        crashed = run_check(by_key("b158_quantize:B158-2"), backend.implementation("b158_quantize"), profile="quick")
        passed = run_check(by_key("b1_quantize:B1-2"), backend.implementation("b1_quantize"), profile="quick")
    assert crashed.verdict == "ERROR"
    assert "SIGSEGV" in crashed.message
    assert crashed.counterexample is not None
    assert passed.verdict == "PASS", passed.message
    assert time.perf_counter() - started < 120


def _same_storage_and_view(a: torch.Tensor, b: torch.Tensor) -> bool:
    bytes_a = torch.empty(0, dtype=torch.uint8).set_(a.untyped_storage())
    bytes_b = torch.empty(0, dtype=torch.uint8).set_(b.untyped_storage())
    return (
        torch.equal(bytes_a, bytes_b)
        and (a.dtype, a.shape, a.stride(), a.storage_offset()) == (b.dtype, b.shape, b.stride(), b.storage_offset())
        and a.requires_grad == b.requires_grad
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.tensor([1.0, -0.0, float("nan"), 1e-45]),
        lambda: torch.tensor([[1.5, -2.0], [0.25, 3.0]], dtype=torch.bfloat16).t(),
        lambda: torch.full((3, 8), float("nan"), dtype=torch.float16)[:, ::2],  # NaN junk in the gaps
        lambda: torch.arange(10.0)[1:].view(3, 3),  # storage offset 1
        lambda: torch.empty(0, 3),
        lambda: torch.tensor(2.5, dtype=torch.float64),
        lambda: torch.tensor([-1, 0, 1], dtype=torch.int8),
        lambda: torch.tensor([1.0, 2.0]).requires_grad_(True),
    ],
)
def test_tensors_cross_the_pipe_with_their_storage_and_view(make: Any) -> None:
    x = make()
    sent = isolation.dumps(("call", 1, x))
    _, _, received = pickle.loads(sent)
    assert type(received) is torch.Tensor and _same_storage_and_view(x, received)
    assert received.untyped_storage().data_ptr() != x.untyped_storage().data_ptr() or x.numel() == 0


def test_other_objects_and_tensor_subclasses_pickle_as_usual() -> None:
    parameter = torch.nn.Parameter(torch.ones(2))
    args = Args((torch.ones(2, 3), torch.zeros(3, dtype=torch.int8), None))
    received_parameter, received_args = pickle.loads(isolation.dumps((parameter, args)))
    assert isinstance(received_parameter, torch.nn.Parameter) and torch.equal(received_parameter, parameter)
    assert isinstance(received_args, Args) and torch.equal(received_args[0], args[0]) and received_args[2] is None
