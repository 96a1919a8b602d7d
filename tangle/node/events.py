"""The node's event stream: numbered events by topic, replayable from a sequence number.

Topics: ``transactions`` (attached), ``confirmations``, ``conflicts``, and
``address:<tgl1...>`` (an output to that address was attached, or confirmed). Every
event carries a sequence number; the log keeps the last ``capacity`` events, so a
client that reconnects with ``since`` gets everything it missed, or, when the log no
longer reaches back that far, an explicit gap notice instead of a silent hole.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tangle import schema
from tangle.address import encode_address
from tangle.ledger import ConflictReason
from tangle.schema import DEFAULT_TOPICS, AddressEvent, Topic
from tangle.transaction import Transaction, TxId

__all__ = ["DEFAULT_TOPICS", "Event", "EventLog", "Subscriber"]

SUBSCRIBER_QUEUE = 10_000

address_text = functools.lru_cache(maxsize=1 << 16)(encode_address)
"""The bech32m text of an address, memoised: events name an address per output, devices
reuse their addresses, and the checksum costs ~80 us in Python."""


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    topic: str
    data: dict[str, Any]

    def json(self) -> dict[str, Any]:
        return schema.event_to_json(self.seq, self.topic, self.data)


class Subscriber:
    """One client's topics and its bounded queue (full: the client is too slow)."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = set(topics)
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if event.topic not in self.topics or self.overflowed:
            return
        if self.queue.qsize() >= SUBSCRIBER_QUEUE - 1:
            self.overflowed = True  # the handler closes it; the client resumes with since
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)


class EventLog:
    def __init__(self, capacity: int = 100_000) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._next = 1
        self._subscribers: set[Subscriber] = set()

    @property
    def last_seq(self) -> int:
        return self._next - 1

    def publish(self, topic: str, data: dict[str, Any]) -> Event:
        event = Event(self._next, topic, data)
        self._next += 1
        self._events.append(event)
        for subscriber in self._subscribers:
            subscriber.offer(event)
        return event

    def replay(self, since: int, topics: set[str]) -> tuple[list[Event], int | None]:
        """Events after ``since`` on ``topics``; and the first seq still kept if some of
        the requested ones are gone (a gap), else None."""
        oldest = self._events[0].seq if self._events else self._next
        gap = oldest if since + 1 < oldest else None
        return [e for e in self._events if e.seq > since and e.topic in topics], gap

    def subscribe(self, topics: Iterable[str]) -> Subscriber:
        subscriber = Subscriber(topics)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

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
