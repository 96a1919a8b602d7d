"""Peer slots and the address book (issue 12: eclipse, peer exchange), pure."""

from __future__ import annotations

import pytest

from tangle.node import addrbook, slots
from tangle.node.addrbook import AddressBook
from tangle.node.slots import PeerSet, address_group


def nid(n: int) -> bytes:
    return n.to_bytes(32, "big")


def fill(
    peers: PeerSet[int], count: int, *, start: int = 0, group: str = "", at: float = 0.0
) -> None:
    for n in range(start, start + count):
        refusal, evicted = peers.join(nid(n), n, at + n, outbound=False, group=group)
        assert refusal is None
        assert evicted is None


def test_address_groups() -> None:
    assert address_group("127.0.0.1") == address_group("::1") == ""  # loopback: no cap
    assert address_group("10.1.2.3") == "10.1.2.3"
    assert address_group("::ffff:10.1.2.3") == "10.1.2.3"
    assert address_group("2001:db8::1") == address_group("2001:db8::ffff") == "2001:db8::/64"
    assert address_group(None) == "?"


def test_inbound_never_takes_an_outbound_slot() -> None:
    """Issue 12, finding 2: 16 inbound connections used to fill every slot, so a
    configured peer dialled next was refused ("peer limit reached")."""
    peers: PeerSet[int] = PeerSet()
    fill(peers, slots.MAX_INBOUND)
    for n in range(100, 100 + 8):
        assert peers.join(nid(n), n, 50.0, outbound=True) == (None, None)
    assert (peers.inbound(), peers.outbound()) == (slots.MAX_INBOUND, 8)


def test_a_full_inbound_evicts_the_youngest_idle_peer() -> None:
    peers: PeerSet[int] = PeerSet(max_inbound=10)
    fill(peers, 10)
    refusal, evicted = peers.join(nid(99), 99, 20.0, outbound=False)
    assert refusal is None
    assert evicted == 9
    assert 99 in set(peers)
    assert 9 not in set(peers)
    assert peers.evicted == 1


def test_peers_that_relay_new_transactions_are_protected() -> None:
    peers: PeerSet[int] = PeerSet(max_inbound=10)
    fill(peers, 10)
    for n in (9, 8, 7, 6):  # the youngest four bring new transactions
        peers.relayed(nid(n), 30.0 + n)
    evicted = [peers.join(nid(100 + k), 100 + k, 40.0 + k, outbound=False)[1] for k in range(6)]
    # Oldest four (0..3) protected by uptime, 6..9 by relay; 5 goes first, then the
    # flood evicts itself, youngest first.
    assert evicted == [5, 100, 101, 102, 103, 104]
    assert {0, 1, 2, 3, 4, 6, 7, 8, 9, 105} == set(peers)


def test_nothing_to_evict_refuses_the_newcomer() -> None:
    peers: PeerSet[int] = PeerSet(max_inbound=4)
    fill(peers, 4)  # all four protected by uptime
    refusal, evicted = peers.join(nid(50), 50, 9.0, outbound=False)
    assert evicted is None
    assert (
        refusal == "peers: expected at most 4 inbound, all of them protected (inbound slots full)"
    )


def test_the_largest_address_group_loses_a_peer() -> None:
    peers: PeerSet[int] = PeerSet(max_inbound=12, per_group=10)
    fill(peers, 4, group="10.0.0.1")  # the oldest: protected
    fill(peers, 5, start=4, group="10.0.0.9", at=10.0)
    fill(peers, 3, start=9, group="10.0.0.2", at=20.0)
    assert peers.join(nid(60), 60, 99.0, outbound=False, group="10.0.0.3")[1] == 8


def test_per_address_cap_and_loopback() -> None:
    peers: PeerSet[int] = PeerSet()
    fill(peers, slots.PER_GROUP, group="10.0.0.5")
    refusal, _ = peers.join(nid(90), 90, 9.0, outbound=False, group="10.0.0.5")
    assert refusal == (
        f"address 10.0.0.5: expected at most {slots.PER_GROUP} inbound peers from one "
        "address, got one more"
    )
    fill(peers, 10, start=100, group="")  # loopback: a devnet shares one address
    assert peers.join(nid(200), 200, 9.0, outbound=True, group="10.0.0.5")[0] is None


def test_one_connection_per_node_id() -> None:
    peers: PeerSet[str] = PeerSet()
    assert peers.join(nid(1), "first", 0.0, outbound=True) == (None, None)
    refusal, _ = peers.join(nid(1), "second", 1.0, outbound=False)
    assert refusal == "node id: expected a node not yet connected, got one already connected"
    assert not peers.leave(nid(1), "second")
    assert peers.leave(nid(1), "first")
    assert len(peers) == 0


# -- the address book ------------------------------------------------------------------------


def test_the_book_keeps_valid_urls_bounded_per_source() -> None:
    book = AddressBook(["http://configured:1"], own="http://me:1")
    urls = [f"http://n{k}:1" for k in range(200)]
    kept = book.learn(
        ["http://me:1", "http://configured:1", "ftp://x", "http://a b", *urls], b"s", 0.0
    )
    assert kept == addrbook.PER_SOURCE  # one peer fills a small share of the book
    assert len(book) == addrbook.PER_SOURCE
    assert book.refused == 2 + (200 - addrbook.PER_SOURCE)


def test_the_book_is_bounded_and_makes_room_only_from_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(addrbook, "MAX_KNOWN", 4)
    book = AddressBook()
    assert book.learn([f"http://a{k}:1" for k in range(4)], b"a", 0.0) == 4
    assert book.learn(["http://b:1"], b"b", 0.0) == 0  # full, nothing failed
    book.failed("http://a2:1", 1.0)
    assert book.learn(["http://b:1"], b"b", 2.0) == 1
    assert "http://a2:1" not in book.learned
    assert len(book) == 4


def test_dialling_backs_off_and_forgets_what_never_worked() -> None:
    book = AddressBook()
    book.learn(["http://a:1", "http://b:1"], b"s", 0.0)
    assert book.due(0.0, set(), 8) == ["http://a:1", "http://b:1"]
    assert book.due(0.0, {"http://a:1"}, 8) == ["http://b:1"]
    assert book.due(0.0, set(), 1) == ["http://a:1"]
    book.failed("http://a:1", 0.0)
    assert book.due(0.5, set(), 8) == ["http://b:1"]  # a: 1 s backoff
    assert book.due(1.0, set(), 8) == ["http://b:1", "http://a:1"]
    for k in range(1, addrbook.MAX_FAILURES):
        book.failed("http://a:1", float(k))
    assert "http://a:1" not in book.learned  # never worked: forgotten
    book.connected("http://b:1")
    last = 2 * addrbook.MAX_FAILURES - 1
    for k in range(last):
        book.failed("http://b:1", float(k))
    assert "http://b:1" in book.learned  # worked once: kept longer, backing off
    assert book.learned["http://b:1"].retry_at == last - 1 + min(
        addrbook.MAX_BACKOFF, addrbook.BACKOFF * 2 ** (last - 1)
    )
    book.failed("http://b:1", 99.0)
    assert "http://b:1" not in book.learned  # twice MAX_FAILURES: gone, its place free


def test_peers_share_what_was_checked() -> None:
    book = AddressBook(["http://c:1"], own="http://me:1")
    book.learn(["http://told:1", "http://worked:1"], b"s", 0.0)
    book.connected("http://worked:1")
    assert book.shareable() == ["http://me:1", "http://c:1", "http://worked:1"]


def test_with_an_address_each_the_youngest_idle_peer_goes() -> None:
    """Review of issue 12: with one peer per group, the first group in dict order (the
    oldest peer's) lost a peer, so each attacker from a fresh address evicted an honest
    one."""
    peers: PeerSet[str] = PeerSet(max_inbound=10)
    for i in range(9):
        peers.join(b"h%d" % i, f"honest{i}", float(i), outbound=False, group=f"10.0.0.{i}")
    evicted = []
    for j in range(12):
        _, victim = peers.join(
            b"a%d" % j, f"attacker{j}", 100.0 + j, outbound=False, group=f"10.9.{j}.1"
        )
        evicted.append(victim)
    assert evicted[0] is None  # a free slot
    assert evicted[1:] == [f"attacker{j}" for j in range(11)]  # the flood evicts itself
    assert {f"honest{i}" for i in range(9)} <= set(peers)
