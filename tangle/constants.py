"""Protocol constants (layer 0, stdlib only).

Every size, cap and domain tag of the protocol lives here, each with the rule of
docs/PROTOCOL.md that defines it. Nothing in this module may change without a new
transaction version.
"""

from typing import Final

TRANSACTION_VERSION: Final = 1
"""§4.1: the only transaction version this code reads or writes (the first byte)."""

HASH_SIZE: Final = 32
"""§2.1: every identifier hash (transaction id, essence hash, address) is 32 bytes."""

PUBLIC_KEY_SIZE: Final = 32
"""§3.1: an Ed25519 public key."""

SIGNATURE_SIZE: Final = 64
"""§5.6: an Ed25519 signature."""

NULL_HASH: Final = bytes(HASH_SIZE)
"""§7.1: 32 zero bytes, the parent of the genesis and of nothing else."""

MAX_INPUTS: Final = 127
"""§4.3: at most this many inputs in one transaction."""

MAX_OUTPUTS: Final = 127
"""§4.3: at most this many outputs in one transaction; also bounds an output index."""

MAX_PAYLOAD_SIZE: Final = 4096
"""§4.3: at most this many bytes of data payload (a meter reading, a sensor record)."""

MAX_SUPPLY: Final = 10**18
"""§8.1: the largest total supply a genesis may allocate, in the smallest unit.

It is below 2**63, so no sum of amounts in a valid transaction can overflow a u64.
"""

OUTPUT_ID_SIZE: Final = HASH_SIZE + 2
"""§2.3: an output id is the creating transaction's id followed by a u16 index."""

INPUT_SIZE: Final = OUTPUT_ID_SIZE
"""§4.2: an encoded input is exactly an output id."""

OUTPUT_SIZE: Final = HASH_SIZE + 8
"""§4.2: an encoded output is a 32-byte address and a u64 amount."""

HEADER_SIZE: Final = 1 + 8 + 8 + HASH_SIZE + HASH_SIZE + PUBLIC_KEY_SIZE
"""§4.2: version, network id, timestamp, trunk, branch and issuer."""

NONCE_SIZE: Final = 8
"""§4.2, §6: the proof-of-work nonce is a u64 and the last field."""

MIN_TRANSACTION_SIZE: Final = HEADER_SIZE + 1 + 1 + 2 + SIGNATURE_SIZE + NONCE_SIZE
"""§4.2: the size of a transaction with no inputs, no outputs and no payload."""

MAX_TRANSACTION_SIZE: Final = (
    MIN_TRANSACTION_SIZE + MAX_INPUTS * INPUT_SIZE + MAX_OUTPUTS * OUTPUT_SIZE + MAX_PAYLOAD_SIZE
)
"""§4.3: no canonical transaction is longer than this."""

MAX_TIMESTAMP: Final = 2**63 - 1
"""§4.3: timestamps are milliseconds since the Unix epoch and must fit an i64."""

# §1.3 Domain separation: every hash of the protocol is BLAKE2 with its own
# personalisation string, so that no two kinds of hash input can ever collide.
PERSON_ESSENCE: Final = b"tangle/essence1"
"""§2.2: personalisation of the essence hash (what the issuer signs)."""

PERSON_TRANSACTION: Final = b"tangle/tx/v1"
"""§2.1: personalisation of the transaction id."""

PERSON_ADDRESS: Final = b"tangle/address1"
"""§3.1: personalisation of the address hash of a public key."""

ADDRESS_HRP: Final = "tgl"
"""§3.2: human-readable prefix of the bech32m text form of an address."""

OWN_WEIGHT: Final = 1
"""§7.5: every transaction's own weight (the whitepaper's analysis assumes 1)."""

DEFAULT_MAX_UNSOLID: Final = 10_000
"""§7.2: default bound of the solidification buffer (a node-local setting)."""
