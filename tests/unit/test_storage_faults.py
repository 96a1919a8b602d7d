"""The SQLite writer survives whatever fails in a commit (issue 12): a bug or an OSError,
not only an ``sqlite3.Error``, fails that commit's futures at once (the API answers 503
with Retry-After), is logged once with its traceback, and the writer goes on."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import ClientTimeout
from aiohttp.test_utils import TestClient, TestServer

from tangle import TxId
from tangle.node import bootstrap
from tangle.node import durable as durable_module
from tangle.node.api import make_app
from tangle.node.config import NodeConfig
from tangle.node.durable import Durability
from tangle.node.errors import StorageError
from tangle.node.genesis import DEV_NETWORK_ID, dev_genesis
from tangle.node.node import Node
from tangle.node.storage import SqliteStore
from tangle.validation import NetworkParams
from tests.helpers import keypair, transfer

PROMPTLY = 5.0
"""Seconds a failed commit's waiter may take to hear of it (it hung for ever before)."""

FAILURES = [RuntimeError("a bug in the writer"), OSError(5, "Input/output error"), KeyError(7)]


def row(n: int) -> tuple[bytes, bytes, float]:
    return bytes([n]) * 32, b"raw %d" % n, float(n)


def stored_ids(path: Path) -> list[bytes]:
    with sqlite3.connect(path) as db:
        ids = [bytes(i) for (i,) in db.execute("SELECT id FROM transactions ORDER BY seq")]
    db.close()
    return ids


def fail_once(
    monkeypatch: pytest.MonkeyPatch,
    store: SqliteStore,
    error: BaseException,
    *,
    after: bool,
    times: int = 1,
) -> None:
    """The store's next row insert (``times`` of them) raises ``error`` (``after``: once
    the rows are written in the open transaction, which must then be rolled back); later
    ones work."""
    real = store._insert
    left = [error] * times

    def insert(rows: list[tuple[bytes, bytes, float]]) -> None:
        if rows and left:
            if after:
                real(rows)
            raise left.pop()
        real(rows)

    monkeypatch.setattr(store, "_insert", insert)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "tangle.sqlite3")
    store.start()
    yield store
    store.close()


@pytest.mark.parametrize("after", [False, True], ids=["before-writing", "after-writing"])
@pytest.mark.parametrize("error", FAILURES, ids=lambda e: type(e).__name__)
def test_any_failure_fails_its_commit_and_the_writer_goes_on(
    store: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: BaseException,
    after: bool,
) -> None:
    heard: list[tuple[list[bytes], StorageError | None]] = []
    store.on_commit = lambda ids, failure: heard.append((ids, failure))
    fail_once(monkeypatch, store, error, after=after)
    caplog.set_level(logging.ERROR, logger="tangle.node.storage")

    failed = store.append(*row(1))
    with pytest.raises(StorageError, match=r"writing 1 changes to .*tangle\.sqlite3") as caught:
        failed.result(timeout=PROMPTLY)
    assert str(error) in str(caught.value)

    later = store.append_many([row(2), row(3)])
    assert later.result(timeout=PROMPTLY) is None
    assert store.confirm([row(2)[0]], 5.0).result(timeout=PROMPTLY) is None
    assert stored_ids(store.path) == [row(2)[0], row(3)[0]]  # the failed commit left nothing
    assert (store.commits, store.rows) == (2, 2)
    store.close()  # the writer tells the node after it settles the futures: wait for it
    assert heard == [([row(1)[0]], caught.value), ([row(2)[0], row(3)[0]], None), ([], None)]
    [record] = [
        r for r in caplog.records if r.name == "tangle.node.storage"
    ]  # once, with the traceback of what really failed
    assert record.exc_info is not None
    assert record.exc_info[1] is error
    assert "writing 1 changes" in record.getMessage()


def test_a_failure_that_repeats_is_logged_in_one_line(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A commit retried every second that fails alike does not print its traceback every
    second; once a commit succeeds, the next failure is news again."""
    full = OSError(28, "No space left on device")
    fail_once(monkeypatch, store, full, after=False, times=2)
    caplog.set_level(logging.ERROR, logger="tangle.node.storage")
    for n in (1, 2):
        with pytest.raises(StorageError):
            store.append(*row(n)).result(timeout=PROMPTLY)
    assert store.append(*row(3)).result(timeout=PROMPTLY) is None  # the disk has room again
    fail_once(monkeypatch, store, full, after=False)
    with pytest.raises(StorageError):
        store.append(*row(4)).result(timeout=PROMPTLY)  # the third failure: after a success
    records = [r for r in caplog.records if r.name == "tangle.node.storage"]
    assert [r.exc_info is not None for r in records] == [True, False, True]
    assert "the same failure again" in records[1].getMessage()


def test_a_failing_commit_callback_does_not_stop_the_writer(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop's wake-up (``on_commit``) raising, as on a closed event loop, loses no
    commit and ends nothing."""

    def on_commit(ids: list[bytes], failure: StorageError | None) -> None:
        raise RuntimeError("Event loop is closed")

    store.on_commit = on_commit
    caplog.set_level(logging.ERROR, logger="tangle.node.storage")
    assert store.append(*row(1)).result(timeout=PROMPTLY) is None
    assert store.append(*row(2)).result(timeout=PROMPTLY) is None
    assert stored_ids(store.path) == [row(1)[0], row(2)[0]]
    store.close()  # the second callback runs after its future is settled: wait for it
    records = [r for r in caplog.records if r.name == "tangle.node.storage"]
    assert len(records) == 2
    assert all(r.exc_info is not None for r in records)


def test_a_dead_writer_fails_appends_at_once(tmp_path: Path) -> None:
    """Should the writer thread end all the same, an append fails at once (and its
    waiters hear of it), rather than waiting in a queue nobody reads."""
    store = SqliteStore(tmp_path / "tangle.sqlite3")
    heard: list[tuple[list[bytes], StorageError | None]] = []
    store.on_commit = lambda ids, failure: heard.append((ids, failure))
    store.start()
    store._queue.put(None)  # the writer ends, as if killed
    assert store._writer is not None
    store._writer.join(PROMPTLY)
    future = store.append(*row(1))
    with pytest.raises(StorageError, match="writer"):
        future.result(timeout=PROMPTLY)
    assert heard[-1][0] == [row(1)[0]]
    assert heard[-1][1] is not None
    store.close()


async def test_durability_fails_the_waiter_and_writes_the_row_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable_module, "RETRY_AFTER", 0.05)
    durable = Durability(SqliteStore(tmp_path / "tangle.sqlite3"))
    durable.start(asyncio.get_running_loop())
    first, second = row(9), row(10)
    try:
        fail_once(monkeypatch, durable.store, OSError(28, "No space left on device"), after=False)
        durable.write(TxId(first[0]), first[1], first[2])
        with pytest.raises(StorageError, match="No space left on device"):
            await asyncio.wait_for(durable.wait(TxId(first[0])), PROMPTLY)
        await asyncio.wait_for(durable.wait(TxId(first[0])), PROMPTLY)  # written again
        assert durable.is_durable(TxId(first[0]))
        durable.write(TxId(second[0]), second[1], second[2])
        await asyncio.wait_for(durable.wait(TxId(second[0])), PROMPTLY)
    finally:
        durable.stopping = True
        await asyncio.to_thread(durable.store.close)
    assert stored_ids(durable.store.path) == [first[0], second[0]]


async def test_the_api_answers_503_with_retry_after_then_201(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end on an in-process node: the submission of a commit that failed for a
    reason other than SQLite's is answered promptly, and the next one is acknowledged."""
    config = NodeConfig(
        dev=True,
        data_dir=tmp_path,
        base_difficulty=0,
        prune_age=0,
        confirm_interval=10_000,
        liveness_interval=10_000,
        node_seed=b"\x02" * 32,
    )
    node = Node(config)
    await node.start()
    client = TestClient(TestServer(make_app(node), host="127.0.0.1", port=0))
    await client.start_server()
    try:
        g = node.genesis.id

        def make(n: int) -> bytes:
            return transfer(keypair(90 + n), node.params, (g, g), payload=b"%d" % n).encode()

        fail_once(monkeypatch, node.store, RuntimeError("a bug"), after=True)
        timeout = ClientTimeout(total=PROMPTLY)
        first = await client.post(
            "/api/v1/transactions", json={"raw": make(1).hex()}, timeout=timeout
        )
        assert first.status == 503
        assert first.headers["Retry-After"] == "1"
        assert (await first.json())["error"]["code"] == "storage_unavailable"
        second = await client.post(
            "/api/v1/transactions", json={"raw": make(2).hex()}, timeout=timeout
        )
        assert second.status == 201, await second.text()
    finally:
        await client.close()
        await node.stop()


def block_the_writer(store: SqliteStore) -> threading.Event:
    """The writer, once it commits its next group, waits (in ``on_commit``) until the
    returned event is set: whatever is queued meanwhile stays queued."""
    release, busy = threading.Event(), threading.Event()

    def on_commit(ids: list[bytes], failure: StorageError | None) -> None:
        busy.set()
        release.wait(PROMPTLY)

    store.on_commit = on_commit
    store.append(*row(1))
    assert busy.wait(PROMPTLY)
    return release


def test_an_append_during_close_fails_at_once(tmp_path: Path) -> None:
    """close() put its stop marker in the queue while the writer was busy: an append
    after it is refused at once, rather than queued behind the marker for ever."""
    store = SqliteStore(tmp_path / "tangle.sqlite3")
    store.start()
    release = block_the_writer(store)
    closing = threading.Thread(target=store.close)
    closing.start()
    deadline = time.monotonic() + PROMPTLY
    while not (store._queue.queue and store._queue.queue[-1] is None):
        assert time.monotonic() < deadline, "close() put no stop marker"
        time.sleep(0.01)
    late = store.append(*row(2))
    release.set()
    try:
        with pytest.raises(StorageError, match="closed"):
            late.result(timeout=PROMPTLY)
    finally:
        closing.join(PROMPTLY)
    assert stored_ids(store.path) == [row(1)[0]]


def test_close_fails_what_is_queued_behind_the_marker(tmp_path: Path) -> None:
    """Whatever sits in the queue after the writer's stop marker is failed by close()."""
    store = SqliteStore(tmp_path / "tangle.sqlite3")
    store.start()
    release = block_the_writer(store)
    store._queue.put(None)  # the writer will stop there, as if closed
    behind = store.append(*row(2))  # the writer is still alive: this one is queued
    release.set()
    store.close()
    with pytest.raises(StorageError, match="closed"):
        behind.result(timeout=PROMPTLY)
    assert stored_ids(store.path) == [row(1)[0]]


def real_row(n: int) -> tuple[bytes, bytes, float]:
    """A row that passes the check: a (genesis) transaction's id, bytes and a time."""
    tx = dev_genesis(n)
    return bytes(tx.id), tx.encode(), float(n)


def crash_copy(tmp_path: Path, *, index: bool) -> Path:
    """A database whose last commit (row 2) is only in its log (-wal), as a crash leaves
    it, with its index (-shm) or without."""
    source = tmp_path / "source"
    store = SqliteStore(source / "tangle.sqlite3")
    store.start()
    store.append(*real_row(1)).result(timeout=PROMPTLY)
    store.close()
    db = sqlite3.connect(source / "tangle.sqlite3", isolation_level=None)
    try:
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("INSERT INTO transactions (id, raw, arrived) VALUES (?, ?, ?)", real_row(2))
        copy = tmp_path / "copy"
        copy.mkdir()
        for path in source.iterdir():
            if index or not path.name.endswith("-shm"):
                copy.joinpath(path.name).write_bytes(path.read_bytes())
    finally:
        db.close()
    return copy / "tangle.sqlite3"


def every_byte(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())}


@pytest.mark.parametrize("index", [True, False], ids=["with-shm", "without-shm"])
def test_the_check_reads_the_log_and_writes_nothing(tmp_path: Path, index: bool) -> None:
    """Until the store is started (or written to), the data dir is read, log and all, and
    stays byte for byte as it was; the check's rows are what the node replays."""
    path = crash_copy(tmp_path, index=index)
    before = every_byte(path)
    store = SqliteStore(path)
    assert [r.tx.id for r in store.load()] == [real_row(1)[0], real_row(2)[0]]
    assert store.count() == 2
    assert store.confirmations() == {}
    assert store.get_meta("schema") == b"2"
    store.close()
    assert every_byte(path) == before


def test_a_data_dir_of_another_network_is_refused_before_any_write(tmp_path: Path) -> None:
    """claim_data_dir checks both ids before it writes either (it wrote the network id,
    then refused the genesis id)."""
    path = crash_copy(tmp_path, index=True)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO meta (key, value) VALUES ('genesis_id', zeroblob(32))")
    db.close()
    before = every_byte(path)
    store = SqliteStore(path)
    params = NetworkParams(network_id=DEV_NETWORK_ID)
    with pytest.raises(StorageError, match="holds genesis id 0000"):
        bootstrap.claim_data_dir(store, params, dev_genesis())
    store.close()
    assert every_byte(path) == before
