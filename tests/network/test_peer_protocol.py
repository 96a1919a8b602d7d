"""The gossip protocol without sockets: honest and misbehaving peers against the pure
state machine of ``tangle.node.peer`` on a fake clock, and the driver in
``tangle.node.gossip`` on a fake websocket and a fake node (milliseconds each)."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import WSMsgType

import tangle.node.peer as peer_module
from tangle import (
    AttachResult,
    Keypair,
    NetworkParams,
    Outcome,
    Transaction,
    TxId,
    solve,
    validate_stateless,
)
from tangle.errors import InvalidTransaction
from tangle.node import wire
from tangle.node.gossip import Gossip, Peer
from tangle.node.peer import (
    BURST,
    HELLO_WITHIN,
    INV_EVERY,
    MAX_ATTEMPTS,
    RATE,
    RETRY_AFTER,
    Drop,
    HelloReceived,
    InventoryReceived,
    LocalInfo,
    PeerProtocol,
    PeersReceived,
    ProveId,
    RequestReceived,
    RequestTracker,
    State,
    TransactionReceived,
)
from tangle.node.wire import Kind
from tests.helpers import NETWORK_ID, keypair, transfer


def local(n: int, api: str) -> LocalInfo:
    key = keypair(100 + n)
    return LocalInfo(NETWORK_ID, key.public_key, api, key.sign)


HERE = local(1, "http://127.0.0.1:1")
THERE = local(2, "http://127.0.0.1:2")
CHALLENGE = b"\xc1" * wire.CHALLENGE_SIZE
"""The challenge HERE sends in the tests of the pure protocol."""


def tid(n: int) -> TxId:
    return TxId(n.to_bytes(32, "big"))


def hello_from(info: LocalInfo, challenge: bytes = b"\xee" * wire.CHALLENGE_SIZE) -> bytes:
    return wire.hello(info.network_id, info.node_id, challenge, info.api)


def auth_from(info: LocalInfo, challenge: bytes, verifier: bytes, *, dialler: bool = True) -> bytes:
    """``info``'s AUTH for a peer ``verifier`` that sent ``challenge`` (``info`` dialled,
    unless ``dialler`` is False)."""
    message = wire.auth_message(info.network_id, challenge, info.node_id, verifier, dialler)
    return wire.encode(Kind.AUTH, info.sign(message))


def open_protocol(now: float = 0.0) -> PeerProtocol:
    """This node's side of a connection THERE dialled, past the HELLO exchange."""
    protocol = PeerProtocol(HERE)
    protocol.start(now, CHALLENGE)
    assert protocol.receive(hello_from(THERE), now) is None  # the dialler proves first
    proven = protocol.receive(auth_from(THERE, CHALLENGE, HERE.node_id), now)
    assert isinstance(proven, HelloReceived)
    assert (proven.node_id, proven.api) == (THERE.node_id, THERE.api)
    assert wire.decode(proven.proof)[0] is Kind.AUTH
    return protocol


@pytest.fixture
def payment(genesis: Transaction, alice: Keypair, params: NetworkParams) -> Transaction:
    return transfer(alice, params, (genesis.id, genesis.id), payload=b"meter=1")


# -- the HELLO exchange ---------------------------------------------------------------------


def test_hello_exchange_opens_both_sides() -> None:
    """HELLO each way; the dialler (HERE) proves first, the accepting side (THERE) once
    that verified: each signs the other's challenge."""
    here, there = PeerProtocol(HERE, outbound=True), PeerProtocol(THERE)
    assert here.state is State.AWAITING_HELLO
    (to_there,) = here.start(0.0, CHALLENGE)
    (to_here,) = there.start(0.0, b"\x07" * wire.CHALLENGE_SIZE)
    assert wire.read_hello(wire.decode(to_there)[1]) == wire.Hello(
        NETWORK_ID, HERE.node_id, CHALLENGE, HERE.api
    )
    assert there.receive(to_there, 0.0) is None  # nothing signed for a stranger
    prove_here = here.receive(to_here, 0.0)
    assert isinstance(prove_here, ProveId)
    assert here.state is there.state is State.AWAITING_AUTH
    opened = there.receive(prove_here.frame, 0.0)
    assert isinstance(opened, HelloReceived)
    assert (opened.node_id, opened.api) == (HERE.node_id, HERE.api)
    assert here.receive(opened.proof, 0.0) == HelloReceived(THERE.node_id, THERE.api)
    assert here.state is there.state is State.OPEN
    assert (here.node_id, here.api) == (THERE.node_id, THERE.api)


def test_nobody_can_claim_another_nodes_id() -> None:
    """Issue 12 (eclipse): an id is a public key, and the AUTH proves its key is held."""
    mallory = local(66, "http://127.0.0.1:66")
    posing = dataclasses.replace(mallory, node_id=THERE.node_id)  # THERE's id, its own key
    protocol = PeerProtocol(HERE)
    protocol.start(0.0, CHALLENGE)
    assert protocol.receive(hello_from(posing), 0.0) is None
    event = protocol.receive(auth_from(posing, CHALLENGE, HERE.node_id), 0.0)
    assert isinstance(event, Drop)
    assert event.reason == (
        "AUTH: expected a signature of this connection's challenge by node "
        f"{THERE.node_id.hex()[:16]}, got one that does not verify"
    )
    assert protocol.state is State.CLOSED


def test_no_node_is_a_signing_oracle() -> None:
    """Review of issue 12: Mallory took victim N's challenge to X, claiming N's id; X
    signed it at once, and N accepted that as X's proof. Now the accepting side signs
    only after the dialler proved its id, and a proof says which side made it."""
    n, x = local(10, ""), local(11, "")
    victim = PeerProtocol(n)
    (hello_n,) = victim.start(0.0, CHALLENGE)
    c_n = wire.read_hello(wire.decode(hello_n)[1]).challenge
    oracle = PeerProtocol(x)  # Mallory dials X, claiming to be N, with N's challenge
    oracle.start(0.0, b"\x05" * 32)
    assert oracle.receive(hello_from(n, c_n), 0.0) is None  # X signs nothing yet
    forged = oracle.receive(auth_from(local(66, ""), b"\x05" * 32, x.node_id), 0.0)
    assert isinstance(forged, Drop)  # and never, as Mallory cannot prove N's id
    # A proof X made as the accepting side does not pass as a dialler's proof.
    as_acceptor = auth_from(x, c_n, n.node_id, dialler=False)
    victim.receive(hello_from(x), 0.0)
    assert isinstance(victim.receive(as_acceptor, 0.0), Drop)


def test_an_auth_from_another_connection_does_not_verify() -> None:
    """A replayed AUTH signs another challenge (or for another verifier)."""
    for challenge, verifier in ((b"\x00" * 32, HERE.node_id), (CHALLENGE, THERE.node_id)):
        protocol = PeerProtocol(HERE)
        protocol.start(0.0, CHALLENGE)
        protocol.receive(hello_from(THERE), 0.0)
        event = protocol.receive(auth_from(THERE, challenge, verifier), 0.0)
        assert isinstance(event, Drop), event
        assert event.reason.startswith("AUTH: expected"), event


@pytest.mark.parametrize("kind", ["INV", "HELLO", "PEERS"])
def test_only_auth_may_follow_hello(kind: str) -> None:
    frames = {
        "INV": wire.ids(Kind.INV, [tid(1)])[0],
        "HELLO": hello_from(THERE),
        "PEERS": wire.peers([]),
    }
    protocol = PeerProtocol(HERE)
    protocol.start(0.0, CHALLENGE)
    protocol.receive(hello_from(THERE), 0.0)
    assert protocol.receive(frames[kind], 0.0) == Drop(f"expected AUTH after HELLO, got {kind}")


def test_a_second_auth_drops_the_peer() -> None:
    protocol = open_protocol()
    event = protocol.receive(auth_from(THERE, CHALLENGE, HERE.node_id), 0.0)
    assert event == Drop("expected one AUTH, got a second AUTH")


def test_the_hello_deadline() -> None:
    """Issue 12 (eclipse): connections that never send HELLO, or never prove it, end."""
    assert HELLO_WITHIN == 5.0
    silent = PeerProtocol(HERE)
    silent.start(10.0, CHALLENGE)
    assert silent.expired(14.9) is None
    assert silent.expired(15.0) == Drop("HELLO: expected within 5 s of connecting, got none")
    assert silent.state is State.CLOSED
    unproven = PeerProtocol(HERE)
    unproven.start(10.0, CHALLENGE)
    unproven.receive(hello_from(THERE), 11.0)
    assert unproven.expired(15.0) == Drop("AUTH: expected within 5 s of connecting, got none")
    assert open_protocol(10.0).expired(1000.0) is None  # open: no deadline


def test_a_hello_without_an_api_url_is_fine() -> None:
    protocol = PeerProtocol(HERE)
    protocol.start(0.0, CHALLENGE)
    protocol.receive(wire.hello(NETWORK_ID, THERE.node_id, CHALLENGE, ""), 0.0)
    event = protocol.receive(auth_from(THERE, CHALLENGE, HERE.node_id), 0.0)
    assert isinstance(event, HelloReceived)
    assert (event.node_id, event.api) == (THERE.node_id, "")


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (wire.encode(Kind.TX, b"\x01" * 200), "TX"),
        (wire.ids(Kind.INV, [tid(1)])[0], "INV"),
        (wire.ids(Kind.REQUEST, [tid(1)])[0], "REQUEST"),
        (wire.peers([]), "PEERS"),
    ],
)
def test_a_frame_before_hello_drops_the_peer(frame: bytes, kind: str) -> None:
    protocol = PeerProtocol(HERE)
    protocol.start(0.0, CHALLENGE)
    assert protocol.receive(frame, 0.0) == Drop(f"expected HELLO first, got {kind}")
    assert protocol.state is State.CLOSED
    assert protocol.receive(hello_from(THERE), 0.0) is None  # closed: nothing more


def test_a_second_hello_drops_the_peer() -> None:
    protocol = open_protocol()
    event = protocol.receive(hello_from(THERE), 0.0)
    assert isinstance(event, Drop)
    assert event.reason == "expected one HELLO, got a second HELLO"
    assert protocol.state is State.CLOSED


def test_a_wrong_network_drops_the_peer() -> None:
    protocol = PeerProtocol(HERE)
    frame = wire.hello(NETWORK_ID + 1, THERE.node_id, CHALLENGE, THERE.api)
    assert protocol.receive(frame, 0.0) == Drop(
        f"network: expected {NETWORK_ID:#x}, got {NETWORK_ID + 1:#x}"
    )


def test_connecting_to_itself_drops_the_connection() -> None:
    protocol = PeerProtocol(HERE)
    (own_hello,) = protocol.start(0.0, CHALLENGE)
    event = protocol.receive(own_hello, 0.0)
    assert isinstance(event, Drop)
    assert "connected to itself" in event.reason
    assert event.reason.startswith("node id: expected another node's, got this node's own")


# -- garbage ----------------------------------------------------------------------------------

TOO_MANY_IDS = wire.encode(Kind.INV, b"\x00" * 32 * (wire.MAX_IDS + 1))
GARBAGE = [
    (b"", "frame: expected at least 2 bytes, got 0"),
    (b"\x01", "frame: expected at least 2 bytes, got 1"),
    (b"\x02\x02" + bytes(wire.MAX_FRAME), "frame: expected at most"),
    (b"\x01\x02" + b"\x00" * 200, "wire version: expected 2, got 1"),
    (b"\x00\x01", "wire version: expected 2, got 0"),
    (b"\x02\x09", "message kind: expected 1..6, got 9"),
    (b"\x02\x00", "message kind: expected 1..6, got 0"),
    (wire.encode(Kind.INV, b""), "INV: expected 1..256 ids of 32 bytes, got 0 bytes"),
    (wire.encode(Kind.INV, b"\x00" * 31), "INV: expected 1..256 ids of 32 bytes, got 31 bytes"),
    (TOO_MANY_IDS, "INV: expected 1..256 ids of 32 bytes, got 8224 bytes"),
    (wire.encode(Kind.REQUEST, b"\x00" * 33), "REQUEST: expected 1..256 ids"),
    (wire.encode(Kind.HELLO, b"\x00" * 71), "HELLO: expected 72..328 bytes, got 71"),
    (wire.encode(Kind.HELLO, b"\x00" * 329), "HELLO: expected 72..328 bytes, got 329"),
    (wire.encode(Kind.AUTH, b"\x00" * 63), "AUTH: expected 64 bytes, got 63"),
    (wire.encode(Kind.PEERS, b"h" * (wire.MAX_PEERS_BYTES + 1)), "PEERS: expected at most"),
]


@pytest.mark.parametrize(("frame", "reason"), GARBAGE)
def test_garbage_drops_the_peer_before_and_after_hello(frame: bytes, reason: str) -> None:
    """The envelope is checked first: before HELLO, garbage is named as such."""
    for protocol in (PeerProtocol(HERE), open_protocol()):
        event = protocol.receive(frame, 0.0)
        assert isinstance(event, Drop), event
        assert event.reason.startswith(reason), event.reason
        assert protocol.state is State.CLOSED


def test_a_tx_that_does_not_decode_drops_the_peer(payment: Transaction) -> None:
    """A TX payload must be a transaction's canonical bytes (§4.2, §4.4)."""
    raw = payment.encode()
    for payload in (b"junk", raw[:-1], raw + b"\x00", b"\x09" + raw[1:]):
        protocol = open_protocol()
        event = protocol.receive(wire.encode(Kind.TX, payload), 0.0)
        assert isinstance(event, Drop)
        assert event.reason.startswith("TX does not decode: "), event.reason


def test_urls_that_are_not_valid_are_ignored_not_fatal() -> None:
    """Issue 12, finding 6: a HELLO's URL or a PEERS entry that is not a valid URL is read
    as none (it used to drop the peer); what is kept is safe in a log line."""
    bad_hello = wire.encode(
        Kind.HELLO, struct.pack(">Q", NETWORK_ID) + THERE.node_id + CHALLENGE + b"\xff"
    )
    protocol = PeerProtocol(HERE)
    protocol.start(0.0, CHALLENGE)
    assert protocol.receive(bad_hello, 0.0) is None
    assert protocol.state is State.AWAITING_AUTH
    assert protocol.api == ""
    for api in ("http://a b", "http://evil\x1b[31m", "ftp://x", "http://é.example"):
        assert wire.read_hello(wire.decode(hello_from(local(3, api)))[1]).api == ""
    protocol = open_protocol()
    mixed = wire.encode(
        Kind.PEERS,
        b"http://a\n\xff\xfe\nftp://x\nhttp://a b\nhttp://\x1b[2J\n\nhttps://b:1/x\nhttps://b:1",
    )
    assert protocol.receive(mixed, 0.0) == PeersReceived(["http://a", "https://b:1"])
    assert protocol.state is State.OPEN


def test_peers_carries_whole_urls_only() -> None:
    """Issue 12, finding 6: PEERS was cut at 4096 bytes mid-URL (even mid-character, and
    then every peer dropped the node on every reconnect)."""
    urls = [f"http://node-{n:04d}.example.org:{10000 + n}" for n in range(400)]
    (frame,) = PeerProtocol.peers(urls)
    payload = wire.decode(frame)[1]
    assert len(payload) <= wire.MAX_PEERS_BYTES
    got = wire.read_peers(payload)
    assert got
    assert set(got) <= set(urls)
    assert len(payload) + len(sorted(urls)[len(got)]) + 1 > wire.MAX_PEERS_BYTES  # as many as fit
    long = ["http://" + "é" * 120, "http://" + "x" * 300, "http://ok"]
    assert wire.read_peers(wire.decode(wire.peers(long))[1]) == ["http://ok"]
    assert wire.hello(NETWORK_ID, THERE.node_id, CHALLENGE, "http://" + "é" * 200).endswith(
        CHALLENGE
    )  # an API URL that is not valid is sent as none, not cut


def test_an_invalid_transaction_drops_the_peer_once(
    payment: Transaction, params: NetworkParams
) -> None:
    """Validation (§5.6 here) is the driver's job, on a thread; the drop is the protocol's."""
    forged = solve(
        dataclasses.replace(payment, signature=keypair(9).sign(payment.essence_hash())), params
    )
    protocol = open_protocol()
    event = protocol.receive(PeerProtocol.tx(forged.encode()), 0.0)
    assert event == TransactionReceived(forged)
    with pytest.raises(InvalidTransaction) as problem:
        validate_stateless(forged, params)
    drop = protocol.invalid_transaction(str(problem.value))
    assert drop == Drop(f"it sent an invalid transaction: {problem.value}")
    assert "does not verify" in drop.reason
    assert protocol.invalid_transaction("again") is None  # one drop, one log line


def test_the_driver_can_close_a_connection() -> None:
    protocol = open_protocol()
    assert protocol.close("expected binary frames, got TEXT") == Drop(
        "expected binary frames, got TEXT"
    )
    assert protocol.receive(wire.peers([]), 0.0) is None


# -- honest traffic -----------------------------------------------------------------------------


def test_messages_after_hello(payment: Transaction) -> None:
    protocol = open_protocol()
    ids = [tid(n) for n in range(3)]
    assert protocol.receive(PeerProtocol.tx(payment.encode()), 0.0) == TransactionReceived(payment)
    (inv,) = PeerProtocol.inv(ids)
    assert protocol.receive(inv, 0.0) == InventoryReceived(ids)
    (request,) = PeerProtocol.request(ids)
    assert protocol.receive(request, 0.0) == RequestReceived(ids)
    (peers,) = PeerProtocol.peers(["http://b", "", "http://a", "http://b"])
    assert protocol.receive(peers, 0.0) == PeersReceived(["http://a", "http://b"])
    (empty,) = PeerProtocol.peers([""])
    assert protocol.receive(empty, 1.0) is None  # one PEERS a PEERS_EVERY: not parsed
    assert protocol.receive(empty, peer_module.PEERS_EVERY) == PeersReceived([])
    assert protocol.state is State.OPEN


def test_inv_carries_the_first_tips_in_one_frame() -> None:
    tips = [tid(n) for n in range(wire.MAX_IDS + 10)]
    (frame,) = PeerProtocol.inv(tips)
    assert wire.read_ids(wire.decode(frame)[1]) == tips[: wire.MAX_IDS]
    assert PeerProtocol.inv([]) == []  # no tips: no INV


def test_request_frames_split_at_max_ids() -> None:
    ids = [tid(n) for n in range(wire.MAX_IDS * 2 + 1)]
    frames = PeerProtocol.request(ids)
    assert [len(wire.read_ids(wire.decode(f)[1])) for f in frames] == [256, 256, 1]
    assert PeerProtocol.request([]) == []


def test_request_is_answered_with_tx_frames_for_known_ids_only(
    payment: Transaction, genesis: Transaction
) -> None:
    held = {payment.id: payment.encode(), genesis.id: genesis.encode()}
    asked = [tid(7), payment.id, tid(8), genesis.id]
    frames = PeerProtocol.answer(asked, held.get)
    receiver = open_protocol()
    events = [receiver.receive(frame, 0.0) for frame in frames]
    assert events == [TransactionReceived(payment), TransactionReceived(genesis)]
    assert PeerProtocol.answer([tid(7)], held.get) == []


# -- the rate limit ---------------------------------------------------------------------------


def test_the_token_bucket_drops_frames_past_the_burst_and_refills(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(peer_module, "PEERS_EVERY", 0.0)  # PEERS frames as plain frames
    protocol = PeerProtocol(HERE, rate=10.0, burst=5.0)
    frame = wire.peers([])
    protocol.start(0.0, CHALLENGE)
    assert protocol.receive(hello_from(THERE), 0.0) is None  # token 1
    proven = protocol.receive(auth_from(THERE, CHALLENGE, HERE.node_id), 0.0)  # token 2
    assert isinstance(proven, HelloReceived)
    assert all(protocol.receive(frame, 0.0) == PeersReceived([]) for _ in range(3))
    assert protocol.receive(frame, 0.0) is None  # the burst is spent: silently ignored
    assert protocol.receive(b"garbage", 0.0) is None  # not even looked at
    assert protocol.throttled == 2
    assert protocol.state is State.OPEN
    assert protocol.receive(frame, 0.05) is None  # half a token
    assert protocol.receive(frame, 0.1) == PeersReceived([])  # ...now one whole
    assert protocol.receive(frame, 0.1) is None
    later = [protocol.receive(frame, 1000.0) for _ in range(7)]  # refilled to the burst only
    assert later == [PeersReceived([])] * 5 + [None, None]
    assert protocol.throttled == 6


def test_the_default_bucket() -> None:
    protocol = PeerProtocol(HERE)
    assert (protocol.rate, protocol.burst, protocol.tokens) == (RATE, BURST, BURST)
    assert (RATE, BURST) == (20_000.0, 40_000.0)


# -- what to ask for, and how often --------------------------------------------------------------


def test_inv_leads_to_a_request_for_unknown_ids_only() -> None:
    protocol = open_protocol()
    known = {tid(1), tid(3)}
    (inv,) = PeerProtocol.inv([tid(n) for n in range(5)])
    event = protocol.receive(inv, 0.0)
    assert isinstance(event, InventoryReceived)
    tracker = RequestTracker()
    wanted = tracker.ask(event.ids, 0.0, known.__contains__)
    assert wanted == [tid(0), tid(2), tid(4)]
    (request,) = PeerProtocol.request(wanted)
    assert wire.read_ids(wire.decode(request)[1]) == wanted
    assert tracker.ask([tid(1), tid(3)], 0.0, known.__contains__) == []  # nothing to ask


def test_retries_are_spaced_by_retry_after_and_end_after_max_attempts() -> None:
    """Housekeeping (every RETRY_AFTER seconds on the driver's clock) asks again for a
    parent still missing (§7.2) only once its last request is RETRY_AFTER old, and gives
    up after MAX_ATTEMPTS requests."""
    assert (MAX_ATTEMPTS, RETRY_AFTER, INV_EVERY) == (5, 1.0, 3.0)
    tracker = RequestTracker()
    missing = tid(5)
    asked_at = []
    now = 100.0
    while now < 120.0:  # ticks of half the period: only every other one is due
        due = tracker.due([missing], now)
        if tracker.ask(due, now, lambda _: False):
            asked_at.append(now)
        now += RETRY_AFTER / 2
    assert asked_at == [100.0 + n * RETRY_AFTER for n in range(MAX_ATTEMPTS)]
    assert tracker.attempts(missing) == MAX_ATTEMPTS
    assert tracker.due([missing], now) == []  # no attempts left: not due
    assert tracker.ask([missing], now, lambda _: False) == []  # an INV does not ask either
    tracker.arrived(missing)
    assert tracker.attempts(missing) == 0


def test_each_peer_asked_counts_an_attempt() -> None:
    """Asking three peers at once uses three of the MAX_ATTEMPTS."""
    tracker = RequestTracker()
    for _ in range(3):
        assert tracker.ask([tid(1)], 0.0, lambda _: False) == [tid(1)]
    assert tracker.attempts(tid(1)) == 3
    assert tracker.due([tid(1), tid(2)], 0.5) == [tid(2)]  # never asked: due at once


def test_given_up_once_the_attempts_ran_out() -> None:
    """Issue 12, finding 8: an id no peer had is given up on (the driver then drops
    what waited on it), RETRY_AFTER after its last attempt."""
    tracker = RequestTracker()
    for n in range(MAX_ATTEMPTS):
        tracker.ask([tid(1)], float(n), lambda _: False)
    tracker.ask([tid(2)], 0.0, lambda _: False)
    last = MAX_ATTEMPTS - 1.0
    assert tracker.due([tid(1)], last + RETRY_AFTER) == []  # no attempts left
    assert tracker.given_up([tid(1), tid(2)], last + 0.5) == []
    assert tracker.given_up([tid(1), tid(2), tid(3)], last + RETRY_AFTER) == [tid(1)]
    assert tracker.attempts(tid(1)) == 0
    assert tracker.attempts(tid(2)) == 1


def test_the_bookkeeping_has_a_hard_cap() -> None:
    """Issue 12, finding 4: an INV flood of made-up ids grew it by ~172 bytes an id
    without bound (+441 MB in 10 s); past the cap the longest-unasked go."""
    assert peer_module.MAX_REQUESTED == 65_536
    tracker = RequestTracker(limit=3)
    tracker.ask([tid(n) for n in range(3)], 0.0, lambda _: False)
    tracker.ask([tid(0)], 1.0, lambda _: False)  # asked again: to the back
    tracker.ask([tid(9), tid(8)], 2.0, lambda _: False)
    assert len(tracker) == 3
    assert tracker.evicted == 2
    assert [tracker.attempts(tid(n)) for n in (1, 2, 0, 9, 8)] == [0, 0, 2, 1, 1]
    flood = RequestTracker()
    for start in range(0, 200_000, wire.MAX_IDS):
        flood.ask([tid(n) for n in range(start, start + wire.MAX_IDS)], 0.0, lambda _: False)
    assert len(flood) == peer_module.MAX_REQUESTED


def test_tidy_forgets_only_the_expired_front() -> None:
    tracker = RequestTracker()
    tracker.ask([tid(n) for n in range(3)], 0.0, lambda _: False)
    tracker.ask([tid(9)], 90.0, lambda _: False)
    tracker.tidy(50.0)
    assert len(tracker) == 4  # nothing a minute old yet
    tracker.tidy(100.0)
    assert len(tracker) == 1  # only the last minute's
    assert tracker.attempts(tid(9)) == 1


def test_the_protocol_module_does_no_io() -> None:
    tree = ast.parse(Path(peer_module.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    forbidden = {"asyncio", "aiohttp", "socket", "time", "logging", "threading", "os"}
    assert not imported & forbidden
    assert not {m for m in imported if m.startswith("tangle.node.")} - {
        "tangle.node.wire",
        "tangle.node.errors",
    }


# -- the driver, on a fake websocket and a fake node -----------------------------------------------


class FakeWebSocket:
    """Yields the given messages, then waits until closed; records what is sent. With
    ``peer``, it answers the driver's HELLO with that peer's AUTH (after ``frames``)."""

    def __init__(self, frames: list[bytes], peer: LocalInfo | None = None) -> None:
        self.incoming: asyncio.Queue[Any] = asyncio.Queue()
        for frame in frames:
            self.incoming.put_nowait(SimpleNamespace(type=WSMsgType.BINARY, data=frame))
        self.sent: list[bytes] = []
        self.closed = False
        self.peer = peer
        self.then: list[bytes] = []

    @classmethod
    def of(cls, peer: LocalInfo, *frames: bytes) -> FakeWebSocket:
        """A peer that sends its HELLO, proves it when asked, then ``frames``."""
        ws = cls([hello_from(peer)], peer)
        ws.then = list(frames)
        return ws

    def feed(self, frame: bytes) -> None:
        self.incoming.put_nowait(SimpleNamespace(type=WSMsgType.BINARY, data=frame))

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            msg = await self.incoming.get()
            if msg is None:
                return
            yield msg

    async def send_bytes(self, frame: bytes) -> None:
        self.sent.append(frame)
        kind, payload = wire.decode(frame)
        if kind is Kind.HELLO and self.peer is not None:
            hello = wire.read_hello(payload)
            self.feed(auth_from(self.peer, hello.challenge, hello.node_id))
            for later in self.then:
                self.feed(later)

    async def close(self) -> None:
        self.closed = True
        self.incoming.put_nowait(None)


class FakeNode:
    """Only the narrow interface gossip may use."""

    def __init__(self, genesis: Transaction, params: NetworkParams) -> None:
        self.params = params
        self.key = SimpleNamespace(public_key=HERE.node_id, sign=HERE.sign)
        self.config = SimpleNamespace(peers=[])
        self.on_new: list[Any] = []
        self.held = {genesis.id: genesis}
        self.accepted: list[Transaction] = []

    def has(self, tx_id: TxId) -> bool:
        return tx_id in self.held

    def knows(self, tx_id: TxId) -> bool:
        return tx_id in self.held

    def raw(self, tx_id: TxId) -> bytes | None:
        tx = self.held.get(tx_id)
        return None if tx is None else tx.encode()

    def tips(self) -> list[TxId]:
        return sorted(self.held)

    def missing_parents(self) -> frozenset[TxId]:
        return frozenset()

    def abandon(self, ids: list[TxId]) -> int:
        return 0

    def accept(self, tx: Transaction) -> AttachResult:
        self.accepted.append(tx)
        self.held[tx.id] = tx
        return AttachResult(Outcome.ATTACHED, attached=(tx.id,))


def kinds(frames: list[bytes]) -> list[Kind]:
    return [wire.decode(f)[0] for f in frames]


async def wait_for(predicate: Any) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("timed out")


async def test_the_driver_syncs_ingests_and_forwards(
    genesis: Transaction,
    params: NetworkParams,
    payment: Transaction,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = FakeNode(genesis, params)
    gossip = Gossip(node)
    gossip.api = HERE.api
    stages = [
        asyncio.ensure_future(gossip._validate_loop()),
        asyncio.ensure_future(gossip._accept_loop()),
    ]
    gossip.book.own = HERE.api
    third = local(3, "")
    one, other = FakeWebSocket.of(THERE), FakeWebSocket.of(third)
    serving = [
        asyncio.ensure_future(gossip._serve(Peer(ws, label, gossip._protocol())))
        for ws, label in ((one, "one"), (other, "other"))
    ]
    await wait_for(lambda: len(one.sent) == len(other.sent) == 4)
    # HELLO, AUTH (proving this node's id), then the sync on connect
    assert kinds(one.sent) == [Kind.HELLO, Kind.AUTH, Kind.INV, Kind.PEERS]
    assert wire.read_ids(wire.decode(one.sent[2])[1]) == [genesis.id]
    assert wire.read_peers(wire.decode(one.sent[3])[1]) == [HERE.api]
    assert sorted(gossip.peers) == sorted([THERE.node_id, third.node_id])

    itself = FakeWebSocket([hello_from(HERE)])
    await gossip._serve(Peer(itself, "itself", gossip._protocol()))
    assert itself.closed  # dropped at its HELLO
    again = FakeWebSocket.of(THERE)
    await gossip._serve(Peer(again, "again", gossip._protocol()))
    assert again.closed  # a second connection to THERE: dropped
    assert "dropping peer itself: node id: expected another node's" in caplog.text
    assert "dropping peer again: node id: expected a node not yet connected" in caplog.text
    assert sorted(gossip.peers) == sorted([THERE.node_id, third.node_id])

    one.feed(PeerProtocol.tx(payment.encode()))
    one.feed(PeerProtocol.tx(payment.encode()))  # a copy: validated once
    one.feed(PeerProtocol.request([tid(1), genesis.id])[0])
    await wait_for(lambda: node.accepted and len(one.sent) == 5 and len(other.sent) == 5)
    assert node.accepted == [payment]
    assert gossip.received == 2
    assert one.sent[4] == PeerProtocol.tx(genesis.encode())  # the one it holds, only
    assert other.sent[4] == PeerProtocol.tx(payment.encode())  # forwarded...
    assert gossip.forwarded == 1  # ...but not back to its source
    assert gossip._peers.slots[THERE.node_id].relayed > 0  # it relayed something new
    assert gossip._peers.slots[third.node_id].relayed == 0

    one.feed(PeerProtocol.inv([payment.id, tid(2)])[0])
    await wait_for(lambda: len(one.sent) == 6)
    assert one.sent[5] == PeerProtocol.request([tid(2)])[0]  # only what it lacks

    one.feed(b"\x02\x09")
    await serving[0]
    assert "dropping peer http://127.0.0.1:2: message kind: expected 1..6, got 9" in caplog.text
    assert one.closed
    assert list(gossip.peers) == [third.node_id]
    await other.close()
    await asyncio.gather(*serving)
    assert gossip.peers == {}
    for task in stages:
        task.cancel()
    await asyncio.gather(*stages, return_exceptions=True)


async def test_the_driver_drops_a_peer_that_sends_an_invalid_transaction(
    genesis: Transaction, params: NetworkParams, payment: Transaction
) -> None:
    forged = dataclasses.replace(payment, signature=keypair(9).sign(payment.essence_hash()))
    node = FakeNode(genesis, params)
    gossip = Gossip(node)
    tasks = [
        asyncio.ensure_future(gossip._validate_loop()),
        asyncio.ensure_future(gossip._accept_loop()),
    ]
    ws = FakeWebSocket.of(THERE, PeerProtocol.tx(solve(forged, params).encode()))
    await asyncio.wait_for(gossip._serve(Peer(ws, "liar", gossip._protocol())), 5)
    assert ws.closed
    assert node.accepted == []
    assert gossip.peers == {}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_inv_and_request_frames_have_their_own_rate() -> None:
    """Issue 12, finding 4: an INV names 256 ids, so a peer sending 20,000 a second made
    the node look up 5 M ids a second; they come from a bucket of ID_RATE a second."""
    assert (peer_module.ID_RATE, peer_module.ID_BURST) == (200.0, 400.0)
    protocol = open_protocol()
    (inv,) = PeerProtocol.inv([tid(1)])
    events = [protocol.receive(inv, 0.0) for _ in range(500)]
    assert sum(isinstance(e, InventoryReceived) for e in events) == 400
    assert protocol.throttled == 100
    assert isinstance(protocol.receive(PeerProtocol.tx(b"x" * 10), 0.0), Drop)  # other bucket
    later = open_protocol()
    passed = sum(later.receive(inv, n / 1000) is not None for n in range(2000))
    assert 799 <= passed <= 800  # the burst, then ID_RATE a second for 2 s


def test_an_id_named_twice_in_one_frame_is_one_attempt() -> None:
    """Review of issue 12: one INV naming an id five times used all its attempts, so no
    honest peer was asked and the node gave up on it."""
    tracker = RequestTracker()
    assert tracker.ask([tid(1)] * MAX_ATTEMPTS, 0.0, lambda _: False) == [tid(1)]
    assert tracker.attempts(tid(1)) == 1


def test_urls_are_a_host_and_a_port_only() -> None:
    """Review of issue 12: paths, queries and users made one host many URLs and let
    peers make nodes fetch arbitrary paths."""
    good = ["http://127.0.0.1:8080", "https://node.example.org", "http://[::1]:80"]
    bad = ["http://a/b", "http://u@h", "http://h?x", "http://h:0", "http://h:70000", "http://a..b"]
    assert [wire.valid_url(u) for u in good] == [True] * 3
    assert [wire.valid_url(u) for u in bad] == [False] * 6


async def test_the_outbox_is_bounded_in_frames_and_bytes() -> None:
    from tangle.node.link import Outbox

    box = Outbox(max_frames=4, max_bytes=100)
    assert all(box.put(b"x" * 10) for _ in range(4))
    assert not box.put(b"x")  # frames full
    assert box.full()
    assert box.dropped == 1
    await box.get()
    assert box.full()  # one frame out is not room: half of either bound is
    await box.get()
    assert not box.full()
    big = Outbox(max_frames=100, max_bytes=100)
    assert big.put(b"x" * 60)
    assert not big.put(b"x" * 60)
    assert big.bytes == 60


def test_full_pending_connections_make_room_from_the_largest_other_group() -> None:
    """Review of issue 12: a full pending set refused everyone, so a flood from a few
    addresses kept newcomers from elsewhere out (and looking up the newcomer's own
    group, absent from the count, raised)."""

    class Pending:
        def __init__(self, group: str, started: float) -> None:
            self.group, self.protocol = group, SimpleNamespace(started=started)

    gossip = Gossip.__new__(Gossip)
    gossip._pending = {Pending("a", 1.0), Pending("b", 2.0), Pending("b", 3.0)}  # type: ignore[assignment]
    dropped: list[float] = []
    gossip._drop = lambda peer, reason: dropped.append(peer.protocol.started)  # type: ignore[method-assign]
    gossip._evict_pending("a")
    assert dropped == [2.0]  # the oldest of the largest group other than the newcomer's
    assert len(gossip._pending) == 2
