"""The one exception tree of the tangle core (layer 0, stdlib only).

::

    TangleError(Exception)
      EncodingError(TangleError, ValueError)    bad bytes or text: truncated, trailing,
                                                oversize, non-canonical, out of range
        AddressError(EncodingError)             a text address: prefix, checksum, length
        tangle.schema.SchemaError(EncodingError)
                                                a JSON body not of the API's documented shape
      InvalidTransaction(TangleError, ValueError)
                                                a stateless rule of PROTOCOL §5 is broken
        WrongNetwork                            §5.2
        ValueRuleViolation                      §5.4, §5.5
        InvalidSignature                        §5.6
        InsufficientWork                        §5.7, §6
      InvalidGenesis(TangleError, ValueError)   §8.1
      UnknownTransaction(TangleError, KeyError) a lookup of an id nobody attached
      InconsistentCone(TangleError, ValueError) a ledger view asked of a conflicting cone

The node's tree (``tangle.node.errors.NodeError``) and the wallet's
(``wallet.errors.WalletError``) hang below ``TangleError`` too.

Every exception keeps its raw arguments in ``args`` (so it pickles across a process
pool) and builds its message in ``__str__``: what was wrong, expected against actual.
"""

from __future__ import annotations


class TangleError(Exception):
    """Base class of every error raised by the tangle core."""


class EncodingError(TangleError, ValueError):
    """Bytes or a value that is not the canonical form of anything (§4)."""

    def __init__(self, field: str, expected: str, actual: str) -> None:
        super().__init__(field, expected, actual)
        self.field = field
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        return f"{self.field}: expected {self.expected}, got {self.actual}"


class AddressError(EncodingError):
    """A text address that does not decode (§3.2)."""


class InvalidTransaction(TangleError, ValueError):
    """A transaction that breaks a stateless validity rule of §5."""

    rule = "§5"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} (PROTOCOL {self.rule})"


class WrongNetwork(InvalidTransaction):
    """The transaction names another network (§5.2)."""

    rule = "§5.2"

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"network id: expected {expected}, got {actual}")
        self.args = (expected, actual)
        self.expected = expected
        self.actual = actual


class ValueRuleViolation(InvalidTransaction):
    """Inputs and outputs that cannot form a transfer (§5.4, §5.5)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.args = (rule, message)
        self.rule = rule


class InvalidSignature(InvalidTransaction):
    """The signature does not verify under the issuer key (§5.6)."""

    rule = "§5.6"


class InsufficientWork(InvalidTransaction):
    """The nonce does not meet the required difficulty (§5.7)."""

    rule = "§5.7"

    def __init__(self, required: int, actual: int) -> None:
        super().__init__(
            f"proof of work: expected at least {required} leading zero bits, got {actual}"
        )
        self.args = (required, actual)
        self.required = required
        self.actual = actual


class InvalidGenesis(TangleError, ValueError):
    """A genesis transaction that breaks §8.1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"invalid genesis: {self.message} (PROTOCOL §8.1)"


class UnknownTransaction(TangleError, KeyError):
    """No attached transaction has this id."""

    def __init__(self, tx_id: bytes) -> None:
        super().__init__(tx_id)
        self.tx_id = tx_id

    def __str__(self) -> str:
        return f"unknown transaction {self.tx_id.hex()}"


class InconsistentCone(TangleError, ValueError):
    """A ledger view was asked of a set of transactions whose cone conflicts (§8.4)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
