"""Peer exchange: the URLs this node knows and which to dial next (layer 5, pure).

PEERS frames tell a node of other nodes' API URLs. :class:`AddressBook` keeps them,
bounded, and says which to dial:

- only valid URLs (:func:`tangle.node.wire.valid_url`) are kept, never this node's own;
- at most ``MAX_KNOWN`` learned URLs, at most ``PER_SOURCE`` of them from one source (the
  driver passes the telling peer's address group, or its node id on loopback), so a
  peer that sends thousands fills a small share of the book; when the book is full a new
  URL takes the place of one that failed and never worked, or is not kept;
- the configured peers are kept apart: the driver dials them for ever, and they are never
  evicted;
- a learned URL is dialled when its backoff has passed (``BACKOFF`` s doubling per failure
  up to ``MAX_BACKOFF``); one that failed ``MAX_FAILURES`` times in a row without ever
  working is forgotten (twice that if it worked once), and so is one that turned out to
  be this node itself;
- PEERS sent to others carry this node's own URL, the configured peers and learned URLs
  that worked at least once: a node passes on what it checked, not what it was told.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from tangle.node.wire import valid_url

MAX_KNOWN = 1024
PER_SOURCE = 64
BACKOFF = 1.0
MAX_BACKOFF = 600.0
MAX_FAILURES = 6


@dataclass(slots=True)
class Entry:
    source: bytes
    """The node id of the peer that told of it."""
    failures: int = 0
    worked: bool = False
    retry_at: float = 0.0


class AddressBook:
    """Known peer URLs (see the module's docstring)."""

    def __init__(self, configured: Iterable[str] = (), own: str = "") -> None:
        self.configured = tuple(dict.fromkeys(configured))
        self.own = own
        self.learned: dict[str, Entry] = {}
        self._per_source: Counter[bytes] = Counter()
        self.refused = 0
        """URLs not kept: invalid, a source over its share, or the book full."""

    def learn(self, urls: Iterable[str], source: bytes, now: float) -> int:
        """Keep the new ones of ``urls`` told by peer ``source``; how many were kept."""
        kept = 0
        for url in urls:
            url = url.rstrip("/")
            if url in self.learned or url == self.own or url in self.configured:
                continue
            if not valid_url(url) or self._per_source[source] >= PER_SOURCE:
                self.refused += 1
                continue
            if len(self.learned) >= MAX_KNOWN and not self._make_room():
                self.refused += 1
                continue
            self.learned[url] = Entry(source, retry_at=now)
            self._per_source[source] += 1
            kept += 1
        return kept

    def _make_room(self) -> bool:
        for url, entry in self.learned.items():
            if entry.failures and not entry.worked:
                self.forget(url)
                return True
        return False

    def due(self, now: float, busy: set[str], want: int) -> list[str]:
        """Up to ``want`` learned URLs to dial now: out of backoff and not in ``busy`` (being
        dialled or connected); those that worked before first."""
        if want <= 0:
            return []
        ready = [url for url, e in self.learned.items() if e.retry_at <= now and url not in busy]
        ready.sort(key=lambda url: (not self.learned[url].worked, self.learned[url].failures))
        return ready[:want]

    def connected(self, url: str) -> None:
        entry = self.learned.get(url)
        if entry is not None:
            entry.failures, entry.worked = 0, True

    def failed(self, url: str, now: float) -> None:
        """A dial of ``url`` failed, or its connection ended: back off, or forget it."""
        entry = self.learned.get(url)
        if entry is None:
            return
        entry.failures += 1
        if entry.failures >= (2 * MAX_FAILURES if entry.worked else MAX_FAILURES):
            self.forget(url)
            return
        entry.retry_at = now + min(MAX_BACKOFF, BACKOFF * 2 ** (entry.failures - 1))

    def forget(self, url: str) -> None:
        entry = self.learned.pop(url, None)
        if entry is not None:
            self._per_source[entry.source] -= 1
            if not self._per_source[entry.source]:
                del self._per_source[entry.source]

    def shareable(self) -> list[str]:
        """What to send in PEERS: this node, the configured peers, learned ones that worked."""
        worked = [url for url, e in self.learned.items() if e.worked]
        return [u for u in (self.own, *self.configured, *worked) if u]

    def __len__(self) -> int:
        return len(self.learned)
