"""A tiny deterministic random source (SplitMix64) for the golden vectors.

numpy's and torch's generators promise no stream stability across versions; this one is ten lines
of integer arithmetic, so the same key gives the same inputs on every machine forever.  Not
for anything statistical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

_MASK = (1 << 64) - 1


class SplitMix64:
    """SplitMix64 (Steele, Lea, Flood 2014), seeded from a text key via sha256."""

    def __init__(self, key: str) -> None:
        self._state = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")

    def next_u64(self) -> int:
        """The next 64-bit output."""
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def uniform(self, low: float, high: float) -> float:
        """A float in ``[low, high)`` built from 53 random bits."""
        return low + (high - low) * ((self.next_u64() >> 11) * 2.0**-53)

    def integer(self, low: int, high: int) -> int:
        """An integer in ``low..high`` inclusive (modulo bias is irrelevant here)."""
        return low + self.next_u64() % (high - low + 1)

    def choice(self, items: Sequence[T]) -> T:
        """One of ``items``."""
        return items[self.integer(0, len(items) - 1)]

    def sign(self) -> float:
        """+1.0 or -1.0."""
        return -1.0 if self.next_u64() & 1 else 1.0

    def shuffled(self, items: Sequence[T]) -> list[T]:
        """A Fisher-Yates shuffled copy of ``items``."""
        out = list(items)
        for i in range(len(out) - 1, 0, -1):
            j = self.integer(0, i)
            out[i], out[j] = out[j], out[i]
        return out
