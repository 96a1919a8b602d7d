"""The exception tree: messages, hierarchy, and pickling for process pools."""

from __future__ import annotations

import pickle

import pytest

from tangle import errors

EXAMPLES = [
    errors.EncodingError("payload", "at most 4096 bytes", "5000 bytes"),
    errors.AddressError("address", "a valid checksum", "a mismatch"),
    errors.InvalidTransaction("trunk: expected an id, got the null hash"),
    errors.WrongNetwork(1, 2),
    errors.ValueRuleViolation("§5.4", "3 outputs but no inputs"),
    errors.InvalidSignature("signature: does not verify"),
    errors.InsufficientWork(16, 3),
    errors.InvalidGenesis("expected no inputs, got 1"),
    errors.UnknownTransaction(b"\x01" * 32),
    errors.InconsistentCone("output spent twice"),
]


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda e: type(e).__name__)
def test_pickles_with_message(exc: errors.TangleError) -> None:
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is type(exc)
    assert str(again) == str(exc)
    assert str(exc)
    assert isinstance(exc, errors.TangleError)


def test_messages_say_expected_and_actual() -> None:
    assert str(errors.WrongNetwork(1, 2)) == "network id: expected 1, got 2 (PROTOCOL §5.2)"
    assert str(errors.InsufficientWork(16, 3)) == (
        "proof of work: expected at least 16 leading zero bits, got 3 (PROTOCOL §5.7)"
    )
    assert str(errors.EncodingError("f", "x", "y")) == "f: expected x, got y"
    assert str(errors.UnknownTransaction(b"\xab" * 32)) == "unknown transaction " + "ab" * 32


def test_hierarchy() -> None:
    assert issubclass(errors.EncodingError, ValueError)
    assert issubclass(errors.AddressError, errors.EncodingError)
    for leaf in (
        errors.WrongNetwork,
        errors.ValueRuleViolation,
        errors.InvalidSignature,
        errors.InsufficientWork,
    ):
        assert issubclass(leaf, errors.InvalidTransaction)
    assert issubclass(errors.UnknownTransaction, KeyError)
    assert errors.ValueRuleViolation("§5.5", "m").rule == "§5.5"
