"""The proof-of-work search over a batch of nonces at once (PROTOCOL §6.1, §6.4).

Stage 2 of the rule is one BLAKE2s compression of a single 64-byte block:
``prefix (32 bytes) || nonce (8 bytes, big-endian) || 24 zero bytes``, counter 40,
final-block flag set. Here that compression runs over a batch of consecutive nonces
as uint32 arrays, one per state word, so each step of the algorithm is one array
operation for the whole batch instead of one Python step per nonce.

Strategy. Every array operation costs about the same (the batch streams through the
cache once), so the work is in *how many* operations run, and in the Python between
them. Hence:

1. Everything that is the same for every nonce runs once, on Python ints: round 0's
   column step reads only the prefix, and three of round 0's four diagonal steps read
   only zero padding words. Only one G step of round 0 sees the nonce.
2. The remaining 73 G steps are written out as straight-line code (generated below
   from the BLAKE2s message schedule), one ufunc call per line on local names, all
   writing into preallocated arrays: no temporaries, no method calls.
3. Zero message words (the padding) add nothing, so their additions are left out.
4. Dead code is removed backwards from the output words the difficulty reads: up to
   32 bits of difficulty need only output word 0, and most of round 9 disappears.
5. The hash is tested on its little-endian words with a bit mask, without swapping
   bytes to big-endian.

:func:`search` returns exactly what :func:`pow.reference.search` returns for the same
arguments: the smallest valid nonce. ``xp`` is the array module: numpy by default, and
a module with numpy's ufunc API (CuPy) can be passed in without edits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pow.reference import PERSON_NONCE, PREFIX_SIZE, nonce_range_end, pow_prefix

MASK = 0xFFFFFFFF
IV = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)
SIGMA = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    (14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3),
    (11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4),
    (7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8),
    (9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13),
    (2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9),
    (12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11),
    (13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10),
    (6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5),
    (10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0),
)
STEPS = (
    (0, 4, 8, 12),
    (1, 5, 9, 13),
    (2, 6, 10, 14),
    (3, 7, 11, 15),  # columns
    (0, 5, 10, 15),
    (1, 6, 11, 12),
    (2, 7, 8, 13),
    (3, 4, 9, 14),  # diagonals
)
BLOCK_LENGTH = PREFIX_SIZE + 8
"""Bytes of message in the one block: the prefix and the nonce."""
DEFAULT_BATCH = 1 << 15
"""Nonces per array operation: about where this machine's cache stops helping."""
MIN_BATCH = 1 << 12


def _parameter_block() -> tuple[int, ...]:
    """h0..h7: the IV mixed with BLAKE2s-256's parameters and the 'tglpow01' person."""
    person = (
        int.from_bytes(PERSON_NONCE[:4], "little"),
        int.from_bytes(PERSON_NONCE[4:], "little"),
    )
    params = (0x01010020, 0, 0, 0, 0, 0, person[0], person[1])
    return tuple(iv ^ p for iv, p in zip(IV, params, strict=True))


H = _parameter_block()


def _bswap32(x: int) -> int:
    return int.from_bytes(x.to_bytes(4, "little"), "big")


# -- the generated kernel ----------------------------------------------------------------
#
# An operation is (function, destination, operands); operands are state words "v3",
# message words "m5", the temporary "t", or int literals. Every operation overwrites
# its destination, which lets a backward liveness pass drop whatever no wanted output
# depends on. Code generation then tracks which words are still the same for every
# lane (everything starts so, except the nonce word m9): an operation on such words
# becomes Python int arithmetic, run once per batch instead of once per lane.

Op = tuple[str, str, tuple[str | int, ...]]
PYTHON_OPERATORS = {"add": "+", "xor": "^", "orr": "|", "shl": "<<", "shr": ">>"}


def _compression_ops() -> list[Op]:
    """The 10 rounds of one BLAKE2s compression and the feed-forward, as operations."""
    ops: list[Op] = []

    def rotr(x: str, n: int) -> None:
        ops.append(("shr", "t", (x, n)))
        ops.append(("shl", x, (x, 32 - n)))
        ops.append(("orr", x, (x, "t")))

    def add_message(a: str, word: int) -> None:
        if word < 10:  # words 10..15 are zero padding: adding them changes nothing
            ops.append(("add", a, (a, f"m{word}")))

    for s in SIGMA:
        for i, step in enumerate(STEPS):
            a, b, c, d = (f"v{j}" for j in step)
            ops.append(("add", a, (a, b)))
            add_message(a, s[2 * i])
            ops.append(("xor", d, (d, a)))
            rotr(d, 16)
            ops.append(("add", c, (c, d)))
            ops.append(("xor", b, (b, c)))
            rotr(b, 12)
            ops.append(("add", a, (a, b)))
            add_message(a, s[2 * i + 1])
            ops.append(("xor", d, (d, a)))
            rotr(d, 8)
            ops.append(("add", c, (c, d)))
            ops.append(("xor", b, (b, c)))
            rotr(b, 7)
    for i in range(8):
        ops.append(("xor", f"v{i}", (f"v{i}", f"v{i + 8}")))
        ops.append(("xor", f"v{i}", (f"v{i}", H[i])))
    return ops


def _live_ops(ops: list[Op], outputs: set[str]) -> list[Op]:
    """Drop every operation whose result no wanted output depends on."""
    live = set(outputs)
    kept: list[Op] = []
    for op in reversed(ops):
        _, dst, operands = op
        if dst in live:
            kept.append(op)
            live.discard(dst)
            live.update(x for x in operands if isinstance(x, str))
    kept.reverse()
    return kept


def _compile(words: int) -> Callable[..., None]:
    """A straight-line kernel writing the first ``words`` output words into ``v``."""
    ops = _live_ops(_compression_ops(), {f"v{i}" for i in range(words)})
    lanes = {"m9"}  # names whose value differs across the batch
    lines = [
        "def kernel(v, t, state, m, m9, add, xor, orr, shl, shr):",
        "    " + ", ".join(f"v{i}" for i in range(16)) + " = v",
        "    " + ", ".join(f"s{i}" for i in range(16)) + " = state",
        "    " + ", ".join(f"m{i}" for i in range(9)) + " = m",
    ]

    def scalar(x: str | int) -> str:
        """The Python-int name of a word while it is the same in every lane."""
        return f"s{x[1:] or 't'}" if isinstance(x, str) and x[0] in "vt" else str(x)

    vector_ops = 0
    for fn, dst, operands in ops:
        if any(x in lanes for x in operands if isinstance(x, str)):
            args = ", ".join(x if x in lanes else scalar(x) for x in map(str, operands))
            line = f"{fn}({args}, out={dst})"
            if "m8" in operands:  # the nonce's high word: zero below 2**32
                line = f"if m8: {line}"
            lanes.add(dst)
            vector_ops += 1
        else:
            a, b = (scalar(x) for x in operands)
            line = f"{scalar(dst)} = ({a} {PYTHON_OPERATORS[fn]} {b}) & {MASK}"
            lanes.discard(dst)
        lines.append("    " + line)
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), f"<blake2s kernel, {words} words>", "exec"), namespace)
    kernel: Callable[..., None] = namespace["kernel"]
    kernel.vector_ops = vector_ops  # type: ignore[attr-defined]
    return kernel


KERNELS = {words: _compile(words) for words in range(1, 9)}
"""Kernels by the number of leading output words a difficulty needs."""


@dataclass(frozen=True, slots=True)
class Target:
    """``work >= difficulty`` as masks on the little-endian output words.

    Leading zero bits of the big-endian hash are, byte by byte, the low bytes of each
    little-endian word first; within a byte, its high bits first.
    """

    masks: tuple[int, ...]
    """For each output word needed: the bits of the little-endian word that must be 0."""

    @classmethod
    def for_difficulty(cls, difficulty: int) -> Target:
        if not 0 <= difficulty <= 256:
            raise ValueError(f"difficulty: expected 0..256, got {difficulty}")
        masks = []
        remaining = difficulty
        while remaining > 0:
            bits = min(32, remaining)
            full, partial = divmod(bits, 8)
            mask = (1 << (8 * full)) - 1
            if partial:
                mask |= ((1 << partial) - 1) << (8 * full + 8 - partial)
            masks.append(mask)
            remaining -= bits
        return cls(tuple(masks))


class BatchSearcher:
    """Stage-2 hashes of ``batch`` consecutive nonces per call, for one prefix."""

    def __init__(self, prefix: bytes, batch: int = DEFAULT_BATCH, xp: Any = np) -> None:
        if len(prefix) != PREFIX_SIZE:
            raise ValueError(f"prefix: expected {PREFIX_SIZE} bytes, got {len(prefix)}")
        if not 1 <= batch <= 1 << 24:
            raise ValueError(f"batch: expected 1..{1 << 24} nonces, got {batch}")
        self.xp = xp
        self.batch = batch
        words = [int.from_bytes(prefix[i : i + 4], "little") for i in range(0, PREFIX_SIZE, 4)]
        self.prefix_words = words
        u32 = xp.uint32
        self._lanes = xp.arange(batch, dtype=u32)
        self._v = [xp.empty(batch, dtype=u32) for _ in range(16)]
        self._t = xp.empty(batch, dtype=u32)
        self._m9 = xp.empty(batch, dtype=u32)
        self._ufuncs = (xp.add, xp.bitwise_xor, xp.bitwise_or, xp.left_shift, xp.right_shift)
        self._state = (*H, *IV[:4], IV[4] ^ BLOCK_LENGTH, IV[5], IV[6] ^ MASK, IV[7])
        """v0..v15 before round 0: counter 40 in v12, the final-block flag in v14."""

    def hash_words(self, start: int, words: int = 8) -> list[Any]:
        """The first ``words`` little-endian output words for nonces from ``start``.

        The nonce's high half comes from ``start`` for the whole batch, so lanes past
        the next multiple of 2**32 hash the wrong nonce: callers ignore them.
        """
        xp, v = self.xp, self._v
        high, low = divmod(start, 1 << 32)
        xp.add(self._lanes, low, out=self._t)  # wraps past 2**32: see above
        # The nonce's big-endian bytes, read as a little-endian word: a byte swap.
        m9, t = self._m9, self._t
        xp.right_shift(t, 24, out=m9)
        for shift, mask in ((8, 0xFF00), (-8, 0xFF0000), (-24, 0xFF000000)):
            tmp = xp.left_shift(t, -shift) if shift < 0 else xp.right_shift(t, shift)
            xp.bitwise_and(tmp, mask, out=tmp)
            xp.bitwise_or(m9, tmp, out=m9)
        m = [*self.prefix_words, _bswap32(high)]
        KERNELS[words](v, self._t, self._state, m, m9, *self._ufuncs)
        return v[:words]

    def find(self, start: int, target: Target) -> int | None:
        """Offset from ``start`` of the batch's first nonce meeting ``target``, or None."""
        if not target.masks:  # difficulty 0: every nonce is valid
            return 0
        xp = self.xp
        words = self.hash_words(start, len(target.masks))
        ok = None
        for word, mask in zip(words, target.masks, strict=True):
            xp.bitwise_and(word, mask, out=word)
            cond = word == 0
            ok = cond if ok is None else ok & cond
        hits = xp.flatnonzero(ok)
        return int(hits[0]) if hits.size else None


def batch_for(difficulty: int) -> int:
    """A batch near the expected number of hashes: big enough to stream, small enough
    that an easy search does not hash thousands of nonces past its answer."""
    return max(MIN_BATCH, min(DEFAULT_BATCH, 1 << max(0, difficulty)))


def search(
    data: bytes,
    difficulty: int,
    start: int = 0,
    count: int | None = None,
    *,
    batch: int | None = None,
    xp: Any = np,
) -> int | None:
    """The smallest nonce in ``[start, start + count)`` meeting ``difficulty``, or None.

    Same contract and same answers as :func:`pow.reference.search`.
    """
    target = Target.for_difficulty(difficulty)
    end = nonce_range_end(start, count)
    searcher = BatchSearcher(pow_prefix(data), batch or batch_for(difficulty), xp)
    return scan(searcher, target, start, end)


def scan(searcher: BatchSearcher, target: Target, start: int, end: int) -> int | None:
    """The smallest nonce in ``[start, end)`` meeting ``target``, batch by batch."""
    pos = start
    while pos < end:
        # A batch never counts lanes past ``end`` or past the next multiple of 2**32.
        stop = min(end, pos + searcher.batch, (pos // (1 << 32) + 1) << 32)
        hit = searcher.find(pos, target)
        if hit is not None and pos + hit < stop:
            return pos + hit
        pos = stop
    return None
