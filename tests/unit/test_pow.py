"""The proof-of-work rule (PROTOCOL §6), reference implementation."""

from __future__ import annotations

import hashlib

import pytest

import pow
from pow.reference import PERSON_NONCE, PERSON_PREFIX


def test_hash_is_two_stage_blake2() -> None:  # §6.1
    data = b"transaction bytes"
    prefix = hashlib.blake2b(data, digest_size=32, person=PERSON_PREFIX).digest()
    assert pow.pow_prefix(data) == prefix
    expected = hashlib.blake2s(prefix + (5).to_bytes(8, "big"), person=PERSON_NONCE).digest()
    assert pow.pow_hash(prefix, 5) == expected


@pytest.mark.parametrize(
    ("digest", "bits"),
    [(b"\x80" + bytes(31), 0), (b"\x01" + bytes(31), 7), (b"\x00\x10" + bytes(30), 11)],
)
def test_leading_zero_bits(digest: bytes, bits: int) -> None:
    assert pow.leading_zero_bits(digest) == bits
    assert pow.leading_zero_bits(bytes(32)) == 256


@pytest.mark.parametrize(
    ("size", "bits"),
    [(0, 0), (189, 0), (303, 0), (512, 0), (513, 1), (1024, 1), (1025, 2), (2049, 3), (13683, 5)],
)
def test_size_bits(size: int, bits: int) -> None:  # §6.2
    assert pow.size_bits(size) == bits
    assert pow.required_difficulty(10, size) == 10 + bits


def test_search_returns_smallest_valid_nonce() -> None:  # §6.4
    data = b"some transaction"
    nonce = pow.search(data, 8)
    assert nonce is not None
    assert pow.verify(data, nonce, 8)
    assert not any(pow.verify(data, n, 8) for n in range(nonce))
    assert pow.search(data, 8, start=nonce) == nonce
    later = pow.search(data, 8, start=nonce + 1)
    assert later is not None
    assert later > nonce


def test_search_gives_up_after_count() -> None:
    data = b"some transaction"
    first = pow.search(data, 8)
    assert first is not None
    assert first > 0
    assert pow.search(data, 8, start=0, count=first) is None
    assert pow.search(data, 8, start=0, count=first + 1) == first


def test_difficulty_zero_accepts_any_nonce() -> None:
    assert pow.search(b"x", 0, start=12345) == 12345
    assert pow.verify(b"x", 99, 0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"difficulty: expected 0\.\.256, got 257"):
        pow.search(b"x", 257)
    with pytest.raises(ValueError, match="start"):
        pow.search(b"x", 1, start=-1)
    with pytest.raises(ValueError, match="base difficulty"):
        pow.required_difficulty(300, 10)
    with pytest.raises(ValueError, match="size"):
        pow.size_bits(-1)


def test_pow_is_standalone() -> None:
    """pow/ imports nothing from tangle/ (the shape we keep)."""
    import ast
    from pathlib import Path

    for path in Path(pow.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "tangle" for n in names), path
