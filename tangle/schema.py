"""The JSON shapes of the node's HTTP API and event stream, in one place (pure).

The node writes these shapes (``tangle.node.api``, the events of ``tangle.node.node``);
the wallet's client, the audit and the tests read them back with the ``*_from_json``
functions here. Status names and error codes are spelled here only (``Status``,
``ErrorCode``).

Conventions (docs/NODE.md): ids are lowercase hex; amounts are decimal strings of the
smallest unit (JSON numbers lose precision above 2**53); addresses are bech32m text;
an error is ``{"error": {"code": ErrorCode, "message": text, ...details}}``.

Every ``*_from_json`` raises :class:`SchemaError` (naming the field, expected against
actual) on a body that does not have the shape, never ``KeyError`` or ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tangle.address import Address, decode_address, encode_address
from tangle.engine import TxMetadata
from tangle.errors import EncodingError
from tangle.ledger import ConflictReason
from tangle.tangle import TxStatus
from tangle.transaction import Output, OutputId, Transaction, TxId

API_PREFIX = "/api/v1"


class Status(StrEnum):
    """A transaction's status on the wire (PROTOCOL §9)."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    CONFLICTING = "conflicting"
    ORPHANED = "orphaned"

    @classmethod
    def of(cls, status: TxStatus) -> Status:
        return cls(status.name.lower())

    @property
    def live(self) -> bool:
        """Confirmed or pending: it may still count (not conflicting, not orphaned)."""
        return self in (Status.PENDING, Status.CONFIRMED)


class ErrorCode(StrEnum):
    """Every ``error.code`` the node answers; clients branch on these, never on text."""

    # 400: bytes or text that do not parse, a request out of bounds
    INVALID_JSON = "invalid_json"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_ADDRESS = "invalid_address"
    INVALID_TOPIC = "invalid_topic"
    BAD_AMOUNT = "bad_amount"
    TOO_MANY = "too_many"
    # 404
    NOT_FOUND = "not_found"
    NOT_AVAILABLE = "not_available"
    # 409: the ledger or the tangle's state says no
    DOUBLE_SPEND = "double_spend"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    NOT_LIVE = "not_live"
    TOO_MANY_PARENTS = "too_many_parents"
    CONFLICTING = "conflicting"
    """409 for a pair of parents that conflict; 422 for a transaction born conflicting."""
    # 408, 413
    REQUEST_TIMEOUT = "request_timeout"
    TOO_LARGE = "too_large"
    # 422: a well-formed transaction the rules refuse
    WRONG_NETWORK = "wrong_network"
    INVALID_SIGNATURE = "invalid_signature"
    INSUFFICIENT_WORK = "insufficient_work"
    INVALID_VALUE = "invalid_value"
    INVALID = "invalid"
    UNKNOWN_PARENT = "unknown_parent"
    # 503, with Retry-After
    STORAGE_UNAVAILABLE = "storage_unavailable"
    OVERLOADED = "overloaded"
    """The node is behind (tangle.node.load): nothing was read; retry after
    ``retry_after_s`` seconds (also the ``Retry-After`` header), with jitter."""


class SchemaError(EncodingError):
    """A JSON body that does not have the documented shape (``field``: where, as
    ``outputs[0].amount``; expected against actual, like any encoding error)."""


# -- reading helpers ----------------------------------------------------------------------


def _get(body: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    if not isinstance(body, Mapping):
        raise SchemaError(where or "body", "a JSON object", type(body).__name__)
    if name not in body:
        raise SchemaError(f"{where}{name}", "a value", "nothing")
    value = body[name]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise SchemaError(f"{where}{name}", kind.__name__, type(value).__name__)
    return value


def _hex(body: Mapping[str, Any], name: str, where: str = "", size: int | None = None) -> bytes:
    text = _get(body, name, str, where)
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise SchemaError(f"{where}{name}", "hex", repr(text[:80])) from None
    if size is not None and len(raw) != size:
        raise SchemaError(f"{where}{name}", f"{size} bytes", f"{len(raw)}")
    return raw


def _tx_id(body: Mapping[str, Any], name: str, where: str = "") -> TxId:
    return TxId(_hex(body, name, where, 32))


def _amount(body: Mapping[str, Any], name: str, where: str = "") -> int:
    text = _get(body, name, str, where)
    if not (text.isascii() and text.isdigit()):
        raise SchemaError(f"{where}{name}", "a decimal string", repr(text[:80]))
    return int(text)


def _address(body: Mapping[str, Any], name: str, where: str = "") -> Address:
    text = _get(body, name, str, where)
    try:
        return decode_address(text)
    except EncodingError as exc:
        raise SchemaError(f"{where}{name}", "a tgl1 address", str(exc)) from None


def _output_id(body: Mapping[str, Any], name: str, where: str = "") -> OutputId:
    text = _get(body, name, str, where)
    try:
        return OutputId.from_hex(text)
    except EncodingError as exc:
        raise SchemaError(f"{where}{name}", "an output id", str(exc)) from None


def _status(body: Mapping[str, Any], name: str, where: str = "") -> Status:
    text = _get(body, name, str, where)
    try:
        return Status(text)
    except ValueError:
        raise SchemaError(f"{where}{name}", "a status", repr(text)) from None


# -- errors -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiError:
    """What an error answer says: its code, message and machine-readable details."""

    code: str
    """An :class:`ErrorCode` value (or a code this client does not know yet)."""
    message: str
    extra: dict[str, Any]


def error_to_json(code: str, message: str, extra: Mapping[str, Any] | None = None) -> Any:
    return {"error": {"code": str(code), "message": message, **(extra or {})}}


def error_from_json(body: Any, fallback: str) -> ApiError:
    """The error object of an answer; ``fallback`` is the message when it has none."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return ApiError("http_error", fallback, {})
    extra = {k: v for k, v in err.items() if k not in ("code", "message")}
    return ApiError(str(err.get("code", "http_error")), str(err.get("message", fallback)), extra)


# -- transactions -------------------------------------------------------------------------


def output_values_to_json(outputs: tuple[Output, ...]) -> list[dict[str, str]]:
    return [{"address": encode_address(o.address), "amount": str(o.amount)} for o in outputs]


def transaction_to_json(tx: Transaction) -> dict[str, Any]:
    """Every field of ``tx`` (PROTOCOL §4.2), its id and size."""
    return {
        "id": tx.id.hex(),
        "version": tx.version,
        "network_id": f"{tx.network_id:#x}",
        "timestamp": tx.timestamp,
        "trunk": tx.trunk.hex(),
        "branch": tx.branch.hex(),
        "issuer": tx.issuer.hex(),
        "inputs": [i.hex() for i in tx.inputs],
        "outputs": output_values_to_json(tx.outputs),
        "payload": tx.payload.hex(),
        "signature": tx.signature.hex(),
        "nonce": str(tx.nonce),
        "size": tx.size,
    }


def transaction_from_json(body: Any) -> Transaction:
    """The transaction a :func:`transaction_to_json` body describes, checked: its id must
    be the id of the fields (a node cannot hand over other bytes under a known id).

    Raises:
        SchemaError: a field is missing or of the wrong shape, or the id does not match.
    """
    try:
        outputs = tuple(
            Output(_address(o, "address", f"outputs[{n}]."), _amount(o, "amount", f"outputs[{n}]."))
            for n, o in enumerate(_get(body, "outputs", list, ""))
        )
        inputs = tuple(
            _output_id({"input": i}, "input", f"inputs[{n}].")
            for n, i in enumerate(_get(body, "inputs", list, ""))
        )
        tx = Transaction(
            version=_get(body, "version", int, ""),
            network_id=int(_get(body, "network_id", str, ""), 16),
            timestamp=_get(body, "timestamp", int, ""),
            trunk=_tx_id(body, "trunk"),
            branch=_tx_id(body, "branch"),
            issuer=_hex(body, "issuer"),
            inputs=inputs,
            outputs=outputs,
            payload=_hex(body, "payload"),
            signature=_hex(body, "signature"),
            nonce=_amount(body, "nonce"),
        )
    except (EncodingError, ValueError) as exc:
        if isinstance(exc, SchemaError):
            raise
        raise SchemaError("transaction", "valid fields", str(exc)) from None
    claimed = _tx_id(body, "id")
    if tx.id != claimed:
        raise SchemaError("id", f"{tx.id.hex()} (the id of these fields)", claimed.hex())
    return tx


def metadata_to_json(meta: TxMetadata) -> dict[str, Any]:
    reason = meta.conflict_reason
    return {
        "status": Status.of(meta.status).value,
        "confidence": round(meta.confidence, 4),
        "cumulative_weight": meta.cumulative_weight,
        "should_promote": meta.should_promote,
        "should_reattach": meta.should_reattach,
        "conflict_reason": None if reason is ConflictReason.NONE else reason.name.lower(),
    }


@dataclass(frozen=True, slots=True)
class MetadataView:
    """What the node says of a transaction (``metadata`` of ``GET /transactions/{id}``)."""

    status: Status
    confidence: float
    cumulative_weight: int | None
    should_promote: bool
    should_reattach: bool
    conflict_reason: str | None


def metadata_from_json(meta: Any, where: str = "metadata.") -> MetadataView:
    confidence = meta.get("confidence", 0.0) if isinstance(meta, dict) else None
    if not isinstance(confidence, int | float) or isinstance(confidence, bool):
        raise SchemaError(f"{where}confidence", "a number", type(confidence).__name__)
    weight = meta.get("cumulative_weight")
    if weight is not None and (not isinstance(weight, int) or isinstance(weight, bool)):
        raise SchemaError(f"{where}cumulative_weight", "int or null", type(weight).__name__)
    reason = meta.get("conflict_reason")
    return MetadataView(
        status=_status(meta, "status", where),
        confidence=float(confidence),
        cumulative_weight=weight,
        should_promote=_get(meta, "should_promote", bool, where),
        should_reattach=_get(meta, "should_reattach", bool, where),
        conflict_reason=str(reason) if reason is not None else None,
    )


@dataclass(frozen=True, slots=True)
class TransactionView:
    """A transaction as the node reports it: the transaction and what the node says."""

    tx: Transaction
    metadata: MetadataView

    @property
    def status(self) -> Status:
        return self.metadata.status


def transaction_view_from_json(body: Any) -> TransactionView:
    return TransactionView(
        tx=transaction_from_json(body),
        metadata=metadata_from_json(_get(body, "metadata", dict, "")),
    )


def network_params_from_json(info: Any) -> tuple[int, int]:
    """(network id, base difficulty) from ``GET /info``."""
    text = _get(info, "network_id", str, "")
    try:
        network_id = int(text, 16)
    except ValueError:
        raise SchemaError("network_id", "a hex string", repr(text[:80])) from None
    base = _get(_get(info, "pow", dict, ""), "base_difficulty", int, "pow.")
    return network_id, base


def statuses_to_json(statuses: Mapping[str, TxStatus | None]) -> dict[str, str | None]:
    return {k: None if v is None else Status.of(v).value for k, v in statuses.items()}


def statuses_from_json(body: Any) -> dict[TxId, Status | None]:
    if not isinstance(body, dict):
        raise SchemaError("statuses", "a JSON object", type(body).__name__)
    answer: dict[TxId, Status | None] = {}
    for key, value in body.items():
        tx_id = _tx_id({"id": key}, "id", "statuses.")
        answer[tx_id] = None if value is None else _status({"s": value}, "s", f"statuses.{key}.")
    return answer


def tx_id_to_json(tx_id: TxId) -> dict[str, str]:
    """The answer to a submission or a faucet request."""
    return {"id": tx_id.hex()}


def tx_id_from_json(body: Any) -> TxId:
    return _tx_id(body, "id")


def tips_to_json(trunk: TxId, branch: TxId) -> dict[str, str]:
    return {"trunk": trunk.hex(), "branch": branch.hex()}


def tips_from_json(body: Any) -> tuple[TxId, TxId]:
    return _tx_id(body, "trunk"), _tx_id(body, "branch")


# -- outputs and addresses ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputView:
    """An output as the node reports it."""

    output_id: OutputId
    address: Address
    amount: int
    status: Status
    """Status of the transaction that created it."""
    spent: bool
    """Spent by a pending or confirmed transaction."""
    spent_by: TxId | None
    spent_confirmed: bool

    @property
    def spendable(self) -> bool:
        """Live (pending or confirmed) and not spent by anything live."""
        return self.status.live and not self.spent

    def to_json(self) -> dict[str, Any]:
        return {
            "output_id": self.output_id.hex(),
            "transaction": self.output_id.tx_id.hex(),
            "index": self.output_id.index,
            "address": encode_address(self.address),
            "amount": str(self.amount),
            "status": self.status.value,
            "spent": self.spent,
            "spent_by": self.spent_by.hex() if self.spent_by is not None else None,
            "spent_confirmed": self.spent_confirmed,
        }


def output_from_json(body: Any, where: str = "") -> OutputView:
    spent_by = body.get("spent_by") if isinstance(body, dict) else None
    return OutputView(
        output_id=_output_id(body, "output_id", where),
        address=_address(body, "address", where),
        amount=_amount(body, "amount", where),
        status=_status(body, "status", where),
        spent=_get(body, "spent", bool, where),
        spent_by=_tx_id(body, "spent_by", where) if spent_by is not None else None,
        spent_confirmed=bool(body.get("spent_confirmed", False)),
    )


@dataclass(frozen=True, slots=True)
class AddressView:
    """An address's balances and outputs as the node reports them."""

    address: Address
    confirmed: int
    pending: int
    """Balance counting pending payments in and out too."""
    outputs: tuple[OutputView, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "address": encode_address(self.address),
            "balance": {"confirmed": str(self.confirmed), "pending": str(self.pending)},
            "outputs": [o.to_json() for o in self.outputs],
        }


def address_from_json(body: Any) -> AddressView:
    balance = _get(body, "balance", dict, "")
    return AddressView(
        address=_address(body, "address"),
        confirmed=_amount(balance, "confirmed", "balance."),
        pending=_amount(balance, "pending", "balance."),
        outputs=tuple(
            output_from_json(o, f"outputs[{n}].")
            for n, o in enumerate(_get(body, "outputs", list, ""))
        ),
    )


# -- events -------------------------------------------------------------------------------


class Topic(StrEnum):
    """The fixed topics of the event stream; ``address:<tgl1...>`` topics come on top."""

    TRANSACTIONS = "transactions"
    CONFIRMATIONS = "confirmations"
    CONFLICTS = "conflicts"


ADDRESS_TOPIC = "address:"
DEFAULT_TOPICS = frozenset(t.value for t in Topic)


def address_topic(address_text: str) -> str:
    return ADDRESS_TOPIC + address_text


class AddressEvent(StrEnum):
    RECEIVED = "received"
    CONFIRMED = "confirmed"


def attached_event(tx: Transaction) -> dict[str, Any]:
    """``transactions``: a transaction was attached."""
    return {
        "id": tx.id.hex(),
        "issuer": tx.issuer.hex(),
        "outputs": len(tx.outputs),
        "payload_bytes": len(tx.payload),
    }


def confirmed_event(tx_id: TxId) -> dict[str, Any]:
    """``confirmations``: a transaction was confirmed."""
    return {"id": tx_id.hex()}


def conflict_event(tx_id: TxId, reason: ConflictReason) -> dict[str, Any]:
    """``conflicts``: a transaction is conflicting, and why."""
    return {"id": tx_id.hex(), "reason": reason.name.lower()}


def address_event(kind: AddressEvent, tx_id: TxId, index: int, amount: int) -> dict[str, Any]:
    """``address:<tgl1...>``: an output to the address was attached or confirmed."""
    return {
        "event": kind.value,
        "id": tx_id.hex(),
        "output_id": f"{tx_id.hex()}{index:04x}",  # OutputId.hex(), cheaper
        "amount": str(amount),
    }


def gap_event(missed_from: int, oldest_kept: int) -> dict[str, Any]:
    """Sent first when the log no longer reaches back to ``since``."""
    return {"type": "gap", "missed_from": missed_from, "oldest_kept": oldest_kept}


def event_to_json(seq: int, topic: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "topic": topic, "data": dict(data)}
