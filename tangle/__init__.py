"""tangle: a feeless micropayment network for machines, in the style of IOTA's tangle.

The pure core (values, encoding, validation, DAG, ledger, tip selection) is
re-exported here; the protocol it implements is docs/PROTOCOL.md.
"""

from tangle.address import Address, decode_address, encode_address
from tangle.builder import build, sign, solve
from tangle.dag import Dag
from tangle.errors import (
    AddressError,
    EncodingError,
    InconsistentCone,
    InsufficientWork,
    InvalidGenesis,
    InvalidSignature,
    InvalidTransaction,
    TangleError,
    UnknownTransaction,
    ValueRuleViolation,
    WrongNetwork,
)
from tangle.ledger import ConflictReason, Ledger, Verdict, make_genesis, validate_genesis
from tangle.signing import Keypair, verify_signature
from tangle.tangle import AttachResult, Outcome, Tangle, TxStatus
from tangle.transaction import Output, OutputId, Transaction, TxId, decode
from tangle.validation import NetworkParams, validate_stateless

__version__ = "0.1.0"

__all__ = [
    "Address",
    "AddressError",
    "AttachResult",
    "ConflictReason",
    "Dag",
    "EncodingError",
    "InconsistentCone",
    "InsufficientWork",
    "InvalidGenesis",
    "InvalidSignature",
    "InvalidTransaction",
    "Keypair",
    "Ledger",
    "NetworkParams",
    "Outcome",
    "Output",
    "OutputId",
    "Tangle",
    "TangleError",
    "Transaction",
    "TxId",
    "TxStatus",
    "UnknownTransaction",
    "ValueRuleViolation",
    "Verdict",
    "WrongNetwork",
    "__version__",
    "build",
    "decode",
    "decode_address",
    "encode_address",
    "make_genesis",
    "sign",
    "solve",
    "validate_genesis",
    "validate_stateless",
    "verify_signature",
]
