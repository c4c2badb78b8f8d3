"""HF transformers' BitNet code (``transformers/integrations/bitnet.py``) as a qcheck backend.

Every op calls the transformers function itself; the adapter only converts arguments and results
to the contract's form (docs/backend-contract.md) and never computes a quantized value itself:

* ``b158_fake_quantize`` is ``WeightQuant.apply`` and ``act_fake_quantize`` is ``ActQuant.apply``
  (autograd Functions whose ``backward`` returns ``grad_output.clone()``: a straight-through
  estimator, so the backend is ``differentiable``).
* ``act_quantize`` is ``BitLinear.activation_quant``, which returns the FAQ's *multiplier*
  ``127 / a``; the contract's scale is its reciprocal (:func:`dequantization_scale`).
* ``pack_ternary`` / ``unpack_ternary`` are ``pack_weights`` / ``unpack_weights``.
* ``bitlinear`` is ``BitLinear.forward`` on a module loaded with ``pack_weights(w_codes)`` and
  ``weight_scale = 1 / w_scale`` (the source's meaning; see :meth:`HfTransformers.bitlinear`).

transformers offers no b1 quantizer and no b1.58 quantizer that returns codes and a scale, so
those ops are not provided.
"""

from __future__ import annotations

import torch
from transformers.integrations import bitnet

from qcheck.conventions import FAQ
from qcheck.quantizers.validation import scale_dtype_for

VALUES_PER_ITEM = bitnet.VALUES_PER_ITEM
"""Codes per packed byte along dim 0 (``integrations/bitnet.py``: 4)."""


def dequantization_scale(multiplier: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The contract's scale ``a / 127`` from the multiplier ``127 / a`` that
    ``BitLinear.activation_quant`` returns (``scale = Qp / input.abs().max(...).clamp(min=1e-5)``).

    How: ``1 / multiplier`` evaluated in float64 (exact to 2**-53 relative for a multiplier of any
    input dtype), then rounded once to the contract's scale dtype (float32, or float64 for float64
    input).  Why it cannot hide a bug: the codes are passed through untouched, so every code check
    sees exactly the source's codes; the reciprocal is monotone and exact up to half an ulp of the
    scale dtype (1/32 of the 16-ulp tolerance of ACT-3), so a multiplier whose reciprocal is off by
    more than 16.5 ulp still fails ACT-3, and exact powers of two stay exact (ACT-5).  A multiplier
    that overflowed to inf becomes a scale of 0 and one that is NaN stays NaN: both are reported,
    never repaired.
    """
    return (1.0 / multiplier.to(torch.float64)).to(scale_dtype_for(dtype))


class HfTransformers:
    """``transformers.integrations.bitnet`` under the FAQ conventions it copies: absmean per tensor
    with ``clamp(min=1e-5)``, 8-bit absmax per token with ``clamp(min=1e-5)``, ``torch.round``
    (half to even), packing ``hf-bitnet`` (``pack_weights``); ``BitLinear`` holds a multiple of 4
    output rows (``weight`` is an ``(out_features // 4, in_features)`` uint8 buffer)."""

    name = "hf-transformers"
    conventions = FAQ.replace(packing="hf-bitnet", out_features_multiple=VALUES_PER_ITEM)
    differentiable = True

    def __init__(self) -> None:
        # WeightQuant.forward, ActQuant.forward, BitLinear.activation_quant and unpack_weights are
        # @torch.compile'd.  Dynamo recompiles for each new dtype, rank and stride pattern and, after
        # 8 recompiles of one function, silently runs it eagerly instead: raise the limits (as the
        # built-in torch-compile backend does) so that every call runs the compiled code, in
        # whatever order the checks run.  Graded in a worker process, this changes only the worker.
        torch._dynamo.config.recompile_limit = 512
        torch._dynamo.config.accumulated_recompile_limit = 4096
        # activation_quant is a method that does not use `self`; any BitLinear instance will do
        self._activations = bitnet.BitLinear(VALUES_PER_ITEM, VALUES_PER_ITEM, bias=False)

    def b158_fake_quantize(self, w: torch.Tensor) -> torch.Tensor:
        """``WeightQuant.apply(w)``: ``(w.float() * s).round().clamp(-1, 1) / s`` with
        ``s = 1 / w.float().abs().mean().clamp_(min=1e-5)``, cast back to ``w.dtype``."""
        out: torch.Tensor = bitnet.WeightQuant.apply(w)  # type: ignore[no-untyped-call]
        return out

    def act_fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        """``ActQuant.apply(x)``: ``(x.float() * s).round().clamp(-128, 127) / s`` with
        ``s = 127 / x.float().abs().max(dim=-1, keepdim=True).values.clamp_(min=1e-5)``."""
        out: torch.Tensor = bitnet.ActQuant.apply(x)  # type: ignore[no-untyped-call]
        return out

    def act_quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``BitLinear.activation_quant(x)`` (8 bits): its int8 codes as they are, and its multiplier
        ``127 / a`` (in x's dtype) as the dequantization scale ``a / 127`` (:func:`dequantization_scale`)."""
        codes, multiplier = self._activations.activation_quant(x)
        return codes, dequantization_scale(multiplier, x.dtype)

    def pack_ternary(self, codes: torch.Tensor) -> torch.Tensor:
        """``pack_weights(codes)``, given the caller's tensor itself: it adds 1 to it in place."""
        return bitnet.pack_weights(codes)

    def unpack_ternary(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """``unpack_weights(packed, dtype=torch.int8)`` sliced to ``shape``'s rows.

        ``unpack_weights`` takes no shape: it returns ``4 * packed.shape[0]`` rows, the slots past
        the last row included (they read as -1).  The contract allows flat bytes, so the buffer is
        first viewed in the packed shape ``(ceil(rows / 4), *rest)`` that ``pack_weights`` returns
        (a no-op for bytes already in that shape); ``reshape`` refuses a buffer of the wrong size,
        as ``BitLinear``'s fixed-size ``weight`` buffer refuses it when a checkpoint is loaded.
        """
        rows, *rest = shape
        packed_shape = (-(-rows // VALUES_PER_ITEM), *rest)
        if tuple(packed.shape) != packed_shape:
            packed = packed.reshape(packed_shape)
        unpacked: torch.Tensor = bitnet.unpack_weights(packed, dtype=torch.int8)
        return unpacked[:rows]

    def bitlinear(
        self, x: torch.Tensor, w_codes: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``BitLinear(K, N, bias, dtype=x.dtype).forward(x)`` holding ``pack_weights(w_codes)``.

        ``BitLinear.forward`` computes ``y / (weight_scale * input_scale)`` with ``input_scale =
        127 / a``, so its ``weight_scale`` buffer means ``1 / mean|W|``: the module is loaded with
        ``1 / w_scale`` (float64, then stored in the buffer's dtype, x's dtype, as a checkpoint in
        that dtype stores it).  ``pack_weights`` gets a copy of ``w_codes`` (it modifies its
        input; that is graded under ``pack_ternary``).  The module holds ``out_features // 4`` packed
        rows (declared: ``out_features_multiple = 4``; ``load_state_dict`` refuses any other row
        count) and a one-element ``weight_scale`` (a per-row or per-group scale is refused).  It
        packs along the output rows only, so ``in_features`` may be anything (no ``row_multiple``).
        """
        out_features, in_features = w_codes.shape
        if w_scale.numel() != 1:
            raise ValueError(
                f"transformers BitLinear holds one weight_scale per layer (a (1,) buffer), got w_scale of "
                f"shape {tuple(w_scale.shape)}"
            )
        module = bitnet.BitLinear(in_features, out_features, bias=bias is not None, dtype=x.dtype)
        state = {
            "weight": bitnet.pack_weights(w_codes.clone()),
            "weight_scale": (1.0 / w_scale.to(torch.float64)).reshape(1).to(x.dtype),
        }
        if bias is not None:
            state["bias"] = bias
        module.load_state_dict(state)
        with torch.no_grad():
            y: torch.Tensor = module(x)
        return y
