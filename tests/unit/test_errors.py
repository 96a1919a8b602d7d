"""The exception tree: messages, hierarchy, and pickling for process pools."""

from __future__ import annotations

import pickle

import pytest

import pow.errors
from tangle import errors, schema
from tangle.node import errors as node_errors

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
    schema.SchemaError("outputs[0].amount", "a decimal string", "'1e3'"),
    node_errors.NodeError("something the node says"),
    node_errors.ConfigError("api_port: expected 0..65535, got 70000"),
    node_errors.StorageError("database x: disk full"),
    node_errors.ProtocolError("expected HELLO first, got TX"),
    node_errors.DevnetError("node 0 exited with 2"),
    node_errors.Rejected("double_spend", "output spent", 409, {"spent_by": "ab" * 32}),
    pow.errors.NonceSpaceExhausted(5, 64),
]


def _subclasses(root: type) -> set[type]:
    found = set()
    for sub in root.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_every_error_of_the_core_the_node_and_pow_has_an_example() -> None:
    """Each class of the trees rooted in TangleError (core and node) and PowError is
    pickled below; a new error class without an example fails here."""
    ours = {
        c
        for c in _subclasses(errors.TangleError) | _subclasses(pow.errors.PowError)
        if c.__module__.split(".")[0] in ("tangle", "pow")
        and not c.__module__.startswith("tangle.demo")
    }
    assert ours <= {type(e) for e in EXAMPLES}, ours - {type(e) for e in EXAMPLES}


def test_rejected_keeps_its_fields_across_pickling() -> None:
    exc = node_errors.Rejected("double_spend", "output spent", 409, {"spent_by": "ab"})
    again = pickle.loads(pickle.dumps(exc))
    assert (again.code, again.message, again.status, again.extra) == (
        "double_spend",
        "output spent",
        409,
        {"spent_by": "ab"},
    )


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda e: type(e).__name__)
def test_pickles_with_message(exc: Exception) -> None:
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is type(exc)
    assert str(again) == str(exc)
    assert again.args == exc.args
    assert str(exc)
    assert isinstance(exc, errors.TangleError | pow.errors.PowError)


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
