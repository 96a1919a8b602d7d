"""The wallet's one error tree: every class under TangleError, and each error pickles to an
equal one (same class, message, args and attributes)."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any

import pytest

from tangle.errors import TangleError
from tangle.transaction import OutputId, TxId
from wallet import errors
from wallet.errors import WalletError

REFUSAL = errors.NodeError(409, "double_spend", "output 07…:0 is already spent", {"spent_by": "08"})
SAMPLES: dict[type[WalletError], tuple[Any, ...]] = {
    errors.WalletError: ("something went wrong",),
    errors.FileAccessError: (Path("/w/keystore.json"), "Permission denied"),
    errors.StateError: (Path("/w/wallet.db"), "file is not a database"),
    errors.UsageError: ("--index: the wallet has no address #4",),
    errors.BadFile: ("fleet.csv", [(2, "amount '1O0' is not a whole number"), (3, "bad")]),
    errors.MeterError: ("reading went backwards: 4099 Wh after 4100 Wh",),
    errors.NodeUnreachable: ("http://127.0.0.1:9", "connection refused"),
    errors.NodeError: REFUSAL.args,
    errors.MalformedAnswer: ("GET /tips", "trunk: expected a value, got nothing", 200),
    errors.InsufficientFunds: (300, 301, "address tgl1…"),
    errors.SplitFunds: (400, 700, 600),
    errors.SendFailed: ("the node refused the payment 4 times",),
    errors.DoubleSpend: ([OutputId(TxId(bytes(32)), 1)], REFUSAL),
    errors.NotConfirmed: ("ab" * 32, "pending", 120.0),
    errors.WrongPassword: (Path("/w/keystore.json"),),
    errors.KeystoreCorrupt: (Path("/w/keystore.json"), "not JSON"),
    errors.KdfFailed: ("could not allocate memory",),
    errors.AuditError: ("transaction ab… is unknown to the node",),
    errors.MeterPaymentInvalid: ("price: expected 8 per kWh, the note says 7",),
    errors.PaymentError: ("the payment went wrong",),
    errors.BudgetExceeded: (600, 1000, 1200),
    errors.PaymentRefused: ("payment_already_used", "the payment was just used"),
    errors.PaymentPending: ("ab" * 32,),
    errors.SellerUnreachable: ("http://127.0.0.1:8080/data", "connection refused"),
    errors.VoucherRefused: ("amount_short", "11 does not cover the 12 that 40 bytes cost"),
}


def test_every_wallet_error_is_in_the_tree_and_has_a_sample() -> None:
    classes = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    }
    assert classes == set(SAMPLES)
    assert issubclass(WalletError, TangleError)
    for cls in classes:
        assert issubclass(cls, WalletError), cls
        assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} is not in the drawing"


def same(a: Any, b: Any) -> bool:
    """Equal values; errors (which compare by identity) by class, args and attributes."""
    if isinstance(a, BaseException):
        return (
            type(a) is type(b)
            and same(a.args, b.args)
            and same(vars(a), vars(b))
            and str(a) == str(b)
        )
    if isinstance(a, tuple | list):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda cls: cls.__name__)
def test_round_trips_through_pickle(cls: type[WalletError]) -> None:
    error = cls(*SAMPLES[cls])
    assert same(error.args, SAMPLES[cls])  # the raw constructor arguments
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert same(copy.args, error.args)
    assert same(vars(copy), vars(error))
    assert copy.exit_code == error.exit_code


def test_args_are_the_constructor_arguments() -> None:
    """Each error is rebuilt from its args alone (the message is made in ``__str__``)."""
    for cls, sample in SAMPLES.items():
        error = cls(*sample)
        assert str(cls(*error.args)) == str(error), cls


def test_messages_say_expected_against_actual() -> None:
    assert str(errors.InsufficientFunds(300, 301)) == (
        "insufficient funds: the wallet has 300 available, the payment needs 301 "
        "(short by 1); nothing was sent"
    )
    assert str(errors.BudgetExceeded(600, 500)) == (
        "price 600 is over the per-request budget 500; nothing was paid"
    )
    assert str(errors.StateError(Path("/w/wallet.db"), "database is locked")) == (
        "wallet state /w/wallet.db: database is locked"
    )
    assert errors.SplitFunds(400, 700, 600).available == 400
    assert "no single address holds 600: the largest has 400" in str(
        errors.SplitFunds(400, 700, 600)
    )
