"""The knobs on which correct BitNet quantizers legitimately differ, with the papers' defaults.

Every reference function takes a :class:`Conventions` value, so any declared convention has a
reference.  This module holds no arithmetic; it only names the choices and their sources.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


class Rounding(enum.Enum):
    """How a value exactly halfway between two integers is rounded (SPEC CONV-1)."""

    HALF_EVEN = "half-even"
    """Ties to the even integer: ``torch.round``/``np.round`` (the FAQ code; 0.5 -> 0, 1.5 -> 2)."""
    HALF_AWAY = "half-away"
    """Ties away from zero: C ``roundf``/``lroundf`` (ggml ``nearest_int`` users, TQ1_0/TQ2_0)."""
    HALF_UP = "half-up"
    """Ties towards +inf: the exact value of ``floor(x + 0.5)`` (-0.5 -> 0, 0.5 -> 1)."""


class EpsMode(enum.Enum):
    """How eps keeps a zero statistic from dividing by zero (SPEC CONV-2)."""

    CLAMP = "clamp"
    """``scale = max(stat, eps)``: the FAQ code's ``.clamp(min=1e-5)`` (HF transformers, BitNet)."""
    ADD = "add"
    """``scale = stat + eps``: the b1.58 paper, eq. 1, ``W / (gamma + eps)``."""
    NONE = "none"
    """No eps; a zero statistic gives scale 0 and all-zero codes (ggml TQ2_0: ``id = d ? 1/d : 0``)."""


class Statistic(enum.Enum):
    """The statistic a weight scale is computed from (SPEC CONV-3)."""

    ABSMEAN = "absmean"
    """``mean(|W|)``: b1 paper beta (eq. 4), b1.58 paper gamma (eq. 3)."""
    ABSMAX = "absmax"
    """``max(|W|)``: ggml TQ2_0/TQ1_0 block scale ``d``, bitnet.cpp I2_S tensor scale."""


class GranularityKind(enum.Enum):
    """Which elements share one scale (SPEC CONV-4)."""

    PER_TENSOR = "per-tensor"
    PER_ROW = "per-row"
    """One scale per index of all but the last dimension (a weight's output row, a token)."""
    PER_GROUP = "per-group"
    """Groups of ``group_size`` consecutive elements along the last dimension of each row; a row
    whose length is not a multiple of ``group_size`` ends in one shorter group."""


@dataclasses.dataclass(frozen=True)
class Granularity:
    """A granularity and, for ``PER_GROUP``, its group size."""

    kind: GranularityKind = GranularityKind.PER_TENSOR
    group_size: int | None = None

    def __post_init__(self) -> None:
        if self.kind is GranularityKind.PER_GROUP:
            if not isinstance(self.group_size, int) or self.group_size < 1:
                raise ValueError(f"per-group granularity needs a group_size >= 1, got {self.group_size!r}")
        elif self.group_size is not None:
            raise ValueError(f"group_size only goes with per-group granularity, not {self.kind.value}")

    def __str__(self) -> str:
        if self.kind is GranularityKind.PER_GROUP:
            return f"per-group({self.group_size})"
        return str(self.kind.value)


PER_TENSOR = Granularity(GranularityKind.PER_TENSOR)
PER_ROW = Granularity(GranularityKind.PER_ROW)
PER_TOKEN = PER_ROW  # an activation's row is a token: the last dimension is the hidden size


def per_group(size: int) -> Granularity:
    """Groups of ``size`` consecutive elements along the last dimension (ggml blocks: 256)."""
    return Granularity(GranularityKind.PER_GROUP, size)


class SignOfZero(enum.Enum):
    """What b1's Sign gives for ``W - alpha == 0`` exactly (SPEC CONV-5)."""

    MINUS_ONE = -1
    """b1 paper eq. 2: ``Sign(x) = +1 if x > 0 else -1``."""
    PLUS_ONE = 1
    """``where(x >= 0, 1, -1)``: a legitimate alternative some kernels declare."""


PACKING_LAYOUTS: tuple[str, ...] = ("qcheck", "hf-bitnet", "tq2_0", "tq1_0", "i2_s")
"""The ternary storage layouts a backend may declare (SPEC PACK-*, :mod:`qcheck.packing`)."""


@dataclasses.dataclass(frozen=True)
class Conventions:
    """One choice for every knob; the defaults are the papers' (b1: arXiv 2310.11453, b1.58:
    arXiv 2402.17764 and its FAQ).  Frozen and hashable, so it can key caches and reports."""

    rounding: Rounding = Rounding.HALF_EVEN
    eps_mode: EpsMode = EpsMode.CLAMP
    eps: float = 1e-5
    weight_statistic: Statistic = Statistic.ABSMEAN
    weight_granularity: Granularity = PER_TENSOR
    activation_granularity: Granularity = PER_TOKEN
    activation_bits: int = 8
    sign_of_zero: SignOfZero = SignOfZero.MINUS_ONE
    packing: str = "qcheck"
    """The layout of ``pack_ternary``/``unpack_ternary`` (one of :data:`PACKING_LAYOUTS`)."""
    row_multiple: int = 1
    """The input domain (SPEC IN-6): the last dimension of every input is a multiple of this
    (ggml blocks: 256); drawn inputs are zero-padded to it."""
    out_features_multiple: int = 1
    """``bitlinear``'s weight rows are a multiple of this (HF BitLinear packs 4 rows per byte)."""

    def __post_init__(self) -> None:
        if self.row_multiple < 1 or self.out_features_multiple < 1:
            raise ValueError("row_multiple and out_features_multiple must be >= 1")
        if self.packing not in PACKING_LAYOUTS:
            raise ValueError(f"packing {self.packing!r} is not one of {', '.join(PACKING_LAYOUTS)}")
        if not 2 <= self.activation_bits <= 8:
            raise ValueError(f"activation_bits must be in 2..8, got {self.activation_bits}")
        if not (self.eps >= 0.0 and self.eps < float("inf")):
            raise ValueError(f"eps must be a finite number >= 0, got {self.eps!r}")
        if self.eps_mode is not EpsMode.NONE and self.eps == 0.0:
            raise ValueError(f"eps_mode {self.eps_mode.value} needs eps > 0; use EpsMode.NONE for no eps")
        if self.activation_granularity.kind is GranularityKind.PER_GROUP:
            raise ValueError("activations are quantized per token or per tensor, not per group")

    def replace(self, **changes: Any) -> Conventions:
        """A copy with some knobs changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def differences(self, other: Conventions | None = None) -> dict[str, str]:
        """The knobs where ``self`` differs from ``other`` (the defaults when omitted), as text."""
        other = other if other is not None else DEFAULT
        out: dict[str, str] = {}
        for field in dataclasses.fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if mine != theirs:
                out[field.name] = _describe(mine)
        return out

    def describe(self) -> str:
        """A one-line summary, e.g. ``rounding=half-even eps=clamp(1e-05) ...``."""
        return (
            f"rounding={self.rounding.value} eps={self.eps_mode.value}({self.eps:g}) "
            f"weight-scale={self.weight_statistic.value}/{self.weight_granularity} "
            f"activations={self.activation_bits}-bit/{self.activation_granularity} "
            f"sign(0)={self.sign_of_zero.value:+d} packing={self.packing}"
            + (f" rows-multiple-of={self.row_multiple}" if self.row_multiple > 1 else "")
            + (f" out-features-multiple-of={self.out_features_multiple}" if self.out_features_multiple > 1 else "")
        )


def _describe(value: object) -> str:
    if isinstance(value, enum.Enum):
        return f"{value.value}"
    return str(value)


DEFAULT = Conventions()
"""The papers' conventions: half-even, clamp at 1e-5, absmean per tensor, 8-bit per token, Sign(0)=-1."""

FAQ = DEFAULT
"""The b1.58 FAQ code (copied by HF transformers): identical to :data:`DEFAULT`."""

B158_PAPER = Conventions(eps_mode=EpsMode.ADD)
"""The b1.58 paper's eq. 1 as written: ``W / (gamma + eps)``."""

GGML_TQ = Conventions(
    rounding=Rounding.HALF_AWAY,
    eps_mode=EpsMode.NONE,
    eps=0.0,
    weight_statistic=Statistic.ABSMAX,
    weight_granularity=per_group(256),
    packing="tq2_0",
)
"""ggml TQ1_0/TQ2_0 quantization: absmax per 256-element block, ``roundf`` ties away from zero,
zero block -> d = 0 and codes 0 (gguf-py ``gguf/quants.py``, ``ggml/src/ggml-quants.c``)."""

NAMED: dict[str, Conventions] = {"default": DEFAULT, "b158-paper": B158_PAPER, "ggml-tq": GGML_TQ}
"""Named convention sets, for the command line and backend declarations."""


_FIELDS = {f.name: f for f in dataclasses.fields(Conventions)}
_ENUMS: dict[str, type[enum.Enum]] = {
    "rounding": Rounding,
    "eps_mode": EpsMode,
    "weight_statistic": Statistic,
    "sign_of_zero": SignOfZero,
}


def parse_granularity(text: str) -> Granularity:
    """``per-tensor``, ``per-row``, ``per-token`` or ``per-group(N)``."""
    value = text.strip().lower()
    if value in ("per-tensor", "per-row", "per-token"):
        return PER_TENSOR if value == "per-tensor" else PER_ROW
    if value.startswith("per-group(") and value.endswith(")"):
        return per_group(int(value[len("per-group(") : -1]))
    raise ValueError(f"unknown granularity {text!r}; use per-tensor, per-row, per-token or per-group(N)")


def from_declaration(declared: object) -> Conventions:
    """The conventions a backend declares: a :class:`Conventions`, a named set (``"ggml-tq"``), or
    a mapping of knob names to values (``{"rounding": "half-away", "eps": 1e-6}``) applied over
    the defaults (a ``"base"`` key names the set to start from).  Raises ``ValueError`` with the
    accepted names on anything else."""
    if declared is None:
        return DEFAULT
    if isinstance(declared, Conventions):
        return declared
    if isinstance(declared, str):
        if declared not in NAMED:
            raise ValueError(f"unknown conventions {declared!r}; named sets: {', '.join(NAMED)}")
        return NAMED[declared]
    if not isinstance(declared, dict):
        raise ValueError(f"conventions must be a Conventions, a named set or a dict, not {type(declared).__name__}")
    items = dict(declared)
    base = from_declaration(items.pop("base", None))
    changes: dict[str, Any] = {}
    for key, raw in items.items():
        if key not in _FIELDS:
            raise ValueError(f"unknown conventions knob {key!r}; knobs: {', '.join(_FIELDS)}")
        if key in _ENUMS:
            kind = _ENUMS[key]
            choices = {str(m.value): m for m in kind} | {m.name.lower(): m for m in kind}
            if isinstance(raw, kind):
                changes[key] = raw
            elif str(raw).lower() in choices:
                changes[key] = choices[str(raw).lower()]
            else:
                raise ValueError(f"{key}={raw!r} is not one of {', '.join(str(m.value) for m in kind)}")
        elif key in ("weight_granularity", "activation_granularity"):
            changes[key] = raw if isinstance(raw, Granularity) else parse_granularity(str(raw))
        elif key == "eps":
            changes[key] = float(raw)
        elif key == "packing":
            changes[key] = str(raw)
        else:
            changes[key] = int(raw)
    return base.replace(**changes)
