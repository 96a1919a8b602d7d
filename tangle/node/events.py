"""The node's event stream: numbered events by topic, replayable from a sequence number.

Topics: ``transactions`` (attached), ``confirmations``, ``conflicts``, and
``address:<tgl1...>`` (an output to that address was attached, or confirmed). Every
event carries a sequence number and the node's ``epoch``, a random id drawn at each start
(the numbering starts again at 1 then); the log keeps the last ``capacity`` events, so a
client that reconnects with ``since=EPOCH:SEQ`` gets everything it missed or, when the log
no longer reaches back that far, or the node restarted since, an explicit gap notice
instead of a silent hole.

Everything a client can grow is capped: streams open on the node (1024), streams per
client (8), topics per stream (256), events queued per stream (10,000: a slower client is
dropped with a gap notice saying where to resume). Subscribers are indexed by topic, so an
event costs only the streams that asked for it.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson

from tangle import schema
from tangle.address import encode_address
from tangle.ledger import ConflictReason
from tangle.node.errors import Rejected
from tangle.schema import DEFAULT_TOPICS, AddressEvent, ErrorCode, Topic
from tangle.transaction import Transaction, TxId

__all__ = ["DEFAULT_TOPICS", "Event", "EventLog", "Since", "Subscriber", "parse_since"]

SUBSCRIBER_QUEUE = 10_000
"""Events queued for one stream; one more and the stream is dropped (a gap notice)."""
MAX_TOPICS = 256
"""Topics one stream may follow (a wallet's devices; a frame of 256 is ~19 KB)."""
MAX_PER_CLIENT = 8
"""Streams one client (a remote IPv4 address, or IPv6 /64) may hold open at once."""
MAX_SUBSCRIBERS = 1024
"""Streams open on the node at once, whoever holds them."""
RETRY_AFTER = 5
"""Seconds a refused stream is asked to wait before it tries again."""
EPOCH_HEX = 16
"""An epoch is 8 random bytes in lowercase hex, drawn when the node starts."""
MAX_SEQ_DIGITS = 19
"""A sequence number has at most 19 decimal digits (it stays below 2**63)."""
_HEX = frozenset("0123456789abcdef")

address_text = functools.lru_cache(maxsize=1 << 16)(encode_address)
"""The bech32m text of an address, memoised: events name an address per output, devices
reuse their addresses, and the encoding costs ~110 us in Python."""


@dataclass(slots=True, eq=False)
class Event:
    seq: int
    topic: str
    data: dict[str, Any]
    epoch: str = ""
    _raw: bytes | None = field(default=None, repr=False)

    def json(self) -> dict[str, Any]:
        return {**schema.event_to_json(self.seq, self.topic, self.data), "epoch": self.epoch}

    def raw(self) -> bytes:
        """The JSON bytes sent, made once however many streams send them."""
        if self._raw is None:
            self._raw = orjson.dumps(self.json())
        return self._raw


@dataclass(frozen=True, slots=True)
class Since:
    """Where a stream resumes: after ``seq`` of boot ``epoch`` (None: this boot's)."""

    seq: int
    epoch: str | None = None


def parse_since(text: str) -> Since:
    """``SEQ`` (this boot's numbering, as before epochs) or ``EPOCH:SEQ`` (an event's).

    Raises:
        Rejected: 400, naming the part that is wrong, what it should be and what it is.
    """
    shown = text if len(text) <= 20 else text[:20] + "..."
    usage = "since: expected SEQ or EPOCH:SEQ"
    epoch, colon, seq = text.rpartition(":")
    if colon and not (len(epoch) == EPOCH_HEX and set(epoch) <= _HEX):
        shown_epoch = epoch if len(epoch) <= 20 else epoch[:20] + "..."
        raise _invalid(f"{usage}; EPOCH: expected {EPOCH_HEX} hex digits, got {shown_epoch!r}")
    if not (seq.isascii() and seq.isdigit() and len(seq) <= MAX_SEQ_DIGITS):
        if colon:
            shown_seq = seq if len(seq) <= 20 else seq[:20] + "..."
            raise _invalid(
                f"{usage}; SEQ: expected up to {MAX_SEQ_DIGITS} decimal digits, got {shown_seq!r}"
            )
        raise _invalid(
            f"{usage} (SEQ: up to {MAX_SEQ_DIGITS} decimal digits; EPOCH: {EPOCH_HEX} hex "
            f"digits, an event's epoch), got {shown!r}"
        )
    return Since(int(seq), epoch if colon else None)


def _invalid(message: str) -> Rejected:
    return Rejected(ErrorCode.INVALID_FIELD, message, 400)


class Subscriber:
    """One stream's topics and its bounded queue (full: the client is too slow)."""

    __slots__ = ("client", "overflowed", "queue", "topics")

    def __init__(self, client: str | None) -> None:
        self.client = client
        self.topics: frozenset[str] = frozenset()
        """Changed only through :meth:`EventLog.update`, which keeps the index."""
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= SUBSCRIBER_QUEUE - 1:
            # The handler sends a gap notice and closes at once: what is queued is dropped
            # (the client resumes from the log), not sent first to a client that cannot keep up.
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)


class EventLog:
    def __init__(
        self,
        capacity: int = 100_000,
        *,
        epoch: str | None = None,
        max_subscribers: int = MAX_SUBSCRIBERS,
        max_per_client: int = MAX_PER_CLIENT,
        max_topics: int = MAX_TOPICS,
    ) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._kept: dict[str, int] = {}
        """Events the log holds per topic: a replay of topics it holds none of is free."""
        self._next = 1
        self.epoch = epoch if epoch is not None else secrets.token_hex(EPOCH_HEX // 2)
        self.max_subscribers = max_subscribers
        self.max_per_client = max_per_client
        self.max_topics = max_topics
        self._subscribers: set[Subscriber] = set()
        self._by_topic: dict[str, set[Subscriber]] = {}
        self._clients: dict[str, int] = {}
        """Streams open per client: at most ``max_subscribers`` keys."""

    @property
    def last_seq(self) -> int:
        return self._next - 1

    @property
    def oldest_seq(self) -> int:
        """The first seq still kept (the next one when the log is empty)."""
        return self._events[0].seq if self._events else self._next

    def publish(self, topic: str, data: dict[str, Any]) -> Event:
        event = Event(self._next, topic, data, self.epoch)
        self._next += 1
        events, kept = self._events, self._kept
        if len(events) == events.maxlen:  # the append drops the oldest
            gone = events[0].topic
            left = kept[gone] - 1
            if left:
                kept[gone] = left
            else:
                del kept[gone]
        events.append(event)
        kept[topic] = kept.get(topic, 0) + 1
        for subscriber in self._by_topic.get(topic, ()):
            subscriber.offer(event)
        return event

    def replay(self, since: int, topics: Iterable[str]) -> tuple[list[Event], int | None]:
        """Events after ``since`` on ``topics``; and the first seq still kept if some of
        the requested ones are gone (a gap), else None.

        Seqs in the log are contiguous, so the replay starts at the index of ``since + 1``
        and walks only the events after it (from the nearer end of the deque), and not at
        all for topics the log holds none of: a resume costs what it replays, not the
        whole log."""
        oldest = self.oldest_seq
        gap = oldest if since + 1 < oldest else None
        start = max(since + 1 - oldest, 0)
        count = len(self._events) - start
        if count <= 0:
            return [], gap
        wanted = frozenset(topics)
        if not any(topic in self._kept for topic in wanted):
            return [], gap
        if start > count:  # the tail is the shorter walk: from the right, then turned round
            tail = [e for e in islice(reversed(self._events), count) if e.topic in wanted]
            tail.reverse()
            return tail, gap
        return [e for e in islice(self._events, start, None) if e.topic in wanted], gap

    def resume(
        self, since: Since | None, topics: Iterable[str]
    ) -> tuple[dict[str, Any] | None, list[Event], int]:
        """What a stream starting at ``since`` sends first: a gap notice (or None), the
        backlog, and the seq it has then seen up to (live events after it follow)."""
        if since is None:
            return None, [], self.last_seq
        after, notice = since.seq, None
        if since.epoch is not None and since.epoch != self.epoch:
            notice = self._notice(
                "restarted",
                since.seq + 1,
                f"the node restarted: expected epoch {self.epoch}, got {since.epoch}; what "
                f"came after {since.epoch}:{since.seq} is lost",
            )
            notice["since_epoch"] = since.epoch
            after = 0
        elif since.seq > self.last_seq:
            notice = self._notice(
                "ahead",
                since.seq + 1,
                f"this node's events end at {self.last_seq}: expected since at most "
                f"{self.last_seq}, got {since.seq} (the node restarted, or is another node)",
            )
            after = 0
        backlog, gap = self.replay(after, topics)
        if notice is None and gap is not None:
            notice = self._notice(
                "pruned",
                after + 1,
                f"the log no longer reaches back to {after + 1}: events before {gap} are lost",
            )
        if notice is not None:
            notice["message"] += f"; replaying from {notice['oldest_kept']}"
        return notice, backlog, after

    def slow_notice(self, last_sent: int) -> dict[str, Any]:
        """The gap notice a stream gets when it is dropped for being too slow."""
        resume = f"{self.epoch}:{last_sent}"
        notice = self._notice(
            "too_slow",
            last_sent + 1,
            f"too slow: {SUBSCRIBER_QUEUE} events queued unsent; reconnect with since={resume}",
        )
        notice["resume"] = resume
        return notice

    def _notice(self, reason: str, missed_from: int, message: str) -> dict[str, Any]:
        return {
            **schema.gap_event(missed_from, self.oldest_seq),
            "epoch": self.epoch,
            "reason": reason,
            "message": message,
        }

    def subscribe(self, topics: Iterable[str] = (), client: str | None = None) -> Subscriber:
        """A new stream of ``client`` (None: the node's own, not counted per client).

        Raises:
            Rejected: 503 (Retry-After) if the node or the client holds all the streams
                it may; 400 for too many topics.
        """
        if len(self._subscribers) >= self.max_subscribers:
            raise self._full(
                f"events: expected at most {self.max_subscribers} event streams open on "
                f"this node, {len(self._subscribers)} are"
            )
        held = self._clients.get(client, 0) if client is not None else 0
        if client is not None and held >= self.max_per_client:
            raise self._full(
                f"events: expected at most {self.max_per_client} event streams per client, "
                f"{client} has {held} open"
            )
        subscriber = Subscriber(client)
        self._subscribers.add(subscriber)
        if client is not None:
            self._clients[client] = held + 1
        try:
            self.update(subscriber, topics)
        except BaseException:
            self.unsubscribe(subscriber)
            raise
        return subscriber

    def update(
        self,
        subscriber: Subscriber,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        check: Callable[[str], None] = lambda topic: None,
    ) -> None:
        """Follow ``add`` and stop following ``remove`` (both: ends unfollowed), all or
        nothing: the count is checked first, then ``check`` on each new topic.

        Raises:
            Rejected: 400 with more than ``max_topics`` topics; what ``check`` raises.
        """
        if subscriber not in self._subscribers:
            return
        new = self._after(subscriber, add, remove)
        added = new - subscriber.topics
        for topic in added:
            check(topic)
        for topic in subscriber.topics - new:
            self._unindex(subscriber, topic)
        for topic in added:
            self._by_topic.setdefault(topic, set()).add(subscriber)
        subscriber.topics = new

    def added(
        self, subscriber: Subscriber, add: Iterable[str], remove: Iterable[str] = ()
    ) -> frozenset[str]:
        """The topics :meth:`update` would newly follow (to check), without changing any.

        Raises:
            Rejected: 400 with more than ``max_topics`` topics.
        """
        return self._after(subscriber, add, remove) - subscriber.topics

    def _after(
        self, subscriber: Subscriber, add: Iterable[str], remove: Iterable[str]
    ) -> frozenset[str]:
        new = (subscriber.topics | frozenset(add)) - frozenset(remove)
        if len(new) > self.max_topics:
            raise Rejected(
                ErrorCode.TOO_MANY,
                f"topics: expected at most {self.max_topics} topics per stream, got {len(new)}",
                400,
            )
        return new

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber not in self._subscribers:
            return
        self._subscribers.discard(subscriber)
        for topic in subscriber.topics:
            self._unindex(subscriber, topic)
        client = subscriber.client
        if client is not None:
            left = self._clients.get(client, 1) - 1
            if left > 0:
                self._clients[client] = left
            else:
                self._clients.pop(client, None)

    def _unindex(self, subscriber: Subscriber, topic: str) -> None:
        followers = self._by_topic.get(topic)
        if followers is not None:
            followers.discard(subscriber)
            if not followers:
                del self._by_topic[topic]

    @staticmethod
    def _full(message: str) -> Rejected:
        return Rejected(
            ErrorCode.OVERLOADED,
            f"{message}; retry after {RETRY_AFTER} s",
            503,
            {"retry_after_s": RETRY_AFTER},
        )

    # -- what the node announces (the shapes are tangle.schema's) ------------------------

    def attached(self, tx: Transaction, reason: ConflictReason) -> None:
        """``tx`` was attached (``reason``: its conflict reason, NONE when consistent)."""
        self.publish(Topic.TRANSACTIONS, schema.attached_event(tx))
        for index, output in enumerate(tx.outputs):
            self.publish(
                schema.address_topic(address_text(output.address)),
                schema.address_event(AddressEvent.RECEIVED, tx.id, index, output.amount),
            )
        if reason is not ConflictReason.NONE:
            self.publish(Topic.CONFLICTS, schema.conflict_event(tx.id, reason))

    def confirmed(self, tx: Transaction) -> None:
        self.publish(Topic.CONFIRMATIONS, schema.confirmed_event(tx.id))
        for index, output in enumerate(tx.outputs):
            self.publish(
                schema.address_topic(address_text(output.address)),
                schema.address_event(AddressEvent.CONFIRMED, tx.id, index, output.amount),
            )

    def conflict(self, tx_id: TxId, reason: ConflictReason) -> None:
        self.publish(Topic.CONFLICTS, schema.conflict_event(tx_id, reason))
