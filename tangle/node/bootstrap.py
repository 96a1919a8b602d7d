"""What a node does before it serves: check its data dir, load or fetch its snapshot (layer 5).

A data dir belongs to one network: the first start writes the network id and the
genesis id into it, and a later start with another network is refused. An empty node
may start from a peer's snapshot (``--snapshot-from``) instead of the genesis; the
snapshot is checked against this network's genesis before it is kept.
"""

from __future__ import annotations

import logging

import aiohttp

from tangle.errors import TangleError
from tangle.node.errors import StorageError
from tangle.node.storage import SqliteStore
from tangle.schema import API_PREFIX
from tangle.snapshot import Snapshot, check_descends, decode_snapshot
from tangle.transaction import Transaction
from tangle.validation import NetworkParams

log = logging.getLogger(__name__)

SNAPSHOT_TIMEOUT = 60.0
"""Seconds a snapshot download may take."""


def claim_data_dir(store: SqliteStore, params: NetworkParams, genesis: Transaction) -> None:
    """Write this network's id and genesis id into a new data dir; refuse another's.

    Everything is checked before anything is written: the stored snapshot descends from
    ``genesis`` (see :func:`stored_snapshot`), and neither id is another network's.

    Raises:
        StorageError: the data dir holds another network (expected against actual), or a
            snapshot of another genesis.
    """
    stored_snapshot(store, genesis)
    missing = []
    for key, mine in (
        ("network_id", params.network_id.to_bytes(8, "big")),
        ("genesis_id", bytes(genesis.id)),
    ):
        stored = store.get_meta(key)
        if stored is None:
            missing.append((key, mine))
        elif stored != mine:
            raise StorageError(
                f"{store.path} holds {key.replace('_', ' ')} {stored.hex()}, "
                f"expected {mine.hex()}: use another --data-dir"
            )
    for key, mine in missing:
        store.set_meta(key, mine)


def stored_snapshot(store: SqliteStore, genesis: Transaction) -> Snapshot:
    """The snapshot the stored history starts from (the genesis's if none was kept).

    Raises:
        StorageError: the stored snapshot does not decode or is of another genesis (the
            one line of a damaged data dir: "table meta, key 'snapshot': ...").
    """
    stored = store.snapshot()
    if stored is None:
        return Snapshot.of_genesis(genesis)
    snapshot = decode_snapshot(stored)  # store.snapshot() checked that it decodes
    try:
        check_descends(snapshot, genesis)
    except TangleError as exc:
        raise store.damaged("table meta, key 'snapshot'", str(exc)) from None
    return snapshot


async def fetch_snapshot(store: SqliteStore, url: str, genesis: Transaction) -> None:
    """Start from a peer's snapshot: download, check against ``genesis``, keep.

    Raises:
        StorageError: the peer cannot be reached, answers an error, or sends a snapshot
            that does not decode or descends from another genesis.
    """
    address = url.rstrip("/") + API_PREFIX + "/snapshot"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SNAPSHOT_TIMEOUT)) as session,
            session.get(address) as response,
        ):
            if response.status != 200:
                raise StorageError(f"snapshot from {address}: HTTP {response.status}")
            data = await response.read()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise StorageError(f"cannot fetch the snapshot from {address}: {exc}") from None
    try:
        snapshot = decode_snapshot(data)
        check_descends(snapshot, genesis)
    except TangleError as exc:
        raise StorageError(f"the snapshot from {address} is unusable: {exc}") from None
    store.set_meta("snapshot", data)
    log.info(
        "starting from the snapshot of %s: id %s, %d transactions pruned, %d entry points",
        url,
        snapshot.id.hex(),
        snapshot.pruned,
        len(snapshot.entry_points),
    )
