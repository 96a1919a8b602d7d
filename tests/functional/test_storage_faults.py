"""A real node process on a damaged data dir: one line naming the database, the table,
the row and what was wrong (expected against actual), exit code 2, no traceback, and
the data dir left exactly as it was (issue 12)."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tangle import decode
from tangle.node.genesis import dev_genesis
from tangle.schema import Status
from tangle.snapshot import Snapshot
from tests.functional.framework import NodeProcess, wait_until
from tests.helpers import keypair

ALICE = keypair(81)
DB = "tangle.sqlite3"
NODE = (sys.executable, "-m", "tangle.node", "node", "--dev")


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir a real node wrote: faucet payments, their confirmations, then a stop."""
    data_dir = tmp_path_factory.mktemp("stored") / "node"
    node = NodeProcess(data_dir).start()
    try:
        paid = [node.fund(ALICE, 100 + n) for n in range(3)]
        wait_until(
            lambda: all(node.status(t) == Status.CONFIRMED for t in paid), 30, "confirmations"
        )
    finally:
        assert node.stop() == 0
    with sqlite3.connect(data_dir / DB) as db:
        assert db.execute("SELECT COUNT(*) FROM transactions").fetchone()[0] >= 3
        assert db.execute("SELECT COUNT(*) FROM confirmed").fetchone()[0] >= 1
    db.close()  # now, not when collected: its -wal and -shm go with it
    return data_dir


def damaged(stored: Path, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    data_dir = tmp_path / "damaged"
    shutil.copytree(stored, data_dir)
    (data_dir / "node.json").unlink(missing_ok=True)
    damage(data_dir / DB)
    return data_dir


def sql(*statements: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with sqlite3.connect(path) as db:
            for statement in statements:
                db.execute(statement)
        db.close()

    return damage


def smash(table: str) -> Callable[[Path], None]:
    """Overwrite the first page of ``table``'s B-tree with 0xff (a bad sector, a bad copy)."""

    def damage(path: Path) -> None:
        with sqlite3.connect(path) as db:
            (page,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
            (size,) = db.execute("PRAGMA page_size").fetchone()
        db.close()
        with path.open("r+b") as f:
            f.seek((page[0] - 1) * size)
            f.write(b"\xff" * size)

    return damage


def truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def raw_of(stored: Path, seq: int) -> bytes:
    with sqlite3.connect(stored / DB) as db:
        (raw,) = db.execute("SELECT raw FROM transactions WHERE seq = ?", (seq,)).fetchone()
    db.close()
    return bytes(raw)


def fingerprint(data_dir: Path) -> dict[str, str]:
    """Every database file's bytes: the database, its log (-wal) and its index (-shm),
    and which of them there are (a file created or deleted is a change too)."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(data_dir.glob(f"{DB}*"))
    }


def start_error(data_dir: Path) -> tuple[int, str]:
    """Start a real node on ``data_dir``: its exit code and stderr. It must not start."""
    proc = subprocess.Popen(
        [*NODE, "--data-dir", str(data_dir), "--api-port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if (data_dir / "node.json").exists():  # it listens: it took the damage for data
            proc.terminate()
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"the node started on a damaged database:\n{err}")
        time.sleep(0.05)
    try:
        _, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the node neither started nor exited:\n{err}")
    return proc.returncode, err


def put_snapshot_of_another_genesis(path: Path, *first: str) -> None:
    other = Snapshot.of_genesis(dev_genesis(0x1234)).encode()
    with sqlite3.connect(path) as db:
        for statement in first:
            db.execute(statement)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('snapshot', ?)", (other,))
    db.close()


def expected_id(stored: Path, seq: int) -> str:
    return bytes(decode(raw_of(stored, seq)).id).hex()


CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "undecodable bytes": (
        sql("UPDATE transactions SET raw = x'0102' WHERE seq = 2"),
        ["table transactions, row seq 2", "raw does not decode", "at least 189 bytes, got 2"],
    ),
    "an id not of its bytes": (
        sql("UPDATE transactions SET id = zeroblob(32) WHERE seq = 2"),
        ["table transactions, row seq 2", "id: expected {id2}", f"got {'00' * 32}"],
    ),
    "bytes stored as text": (
        sql("UPDATE transactions SET raw = 'hello' WHERE seq = 3"),
        ["table transactions, row seq 3", "raw: expected bytes", "got text 'hello'"],
    ),
    "an arrival that is no time": (
        sql("UPDATE transactions SET arrived = 'soon' WHERE seq = 2"),
        ["table transactions, row seq 2", "arrived: expected seconds", "got text 'soon'"],
    ),
    "a confirmation of no id": (
        sql("UPDATE confirmed SET id = x'01' WHERE rowid = (SELECT MIN(rowid) FROM confirmed)"),
        ["table confirmed, rowid", "id: expected 32 bytes, got 1"],
    ),
    "a confirmation time that is no time": (
        sql("UPDATE confirmed SET at = 'x' WHERE rowid = (SELECT MIN(rowid) FROM confirmed)"),
        ["table confirmed, rowid", "at: expected seconds", "got text 'x'"],
    ),
    "an undecodable snapshot": (
        sql("INSERT OR REPLACE INTO meta (key, value) VALUES ('snapshot', x'0102')"),
        ["table meta, key 'snapshot'", "does not decode", "snapshot network id: expected 8"],
    ),
    "a schema stored as text": (
        sql("UPDATE meta SET value = 'two' WHERE key = 'schema'"),
        ["table meta, key 'schema'", "expected bytes", "got text 'two'"],
    ),
    "no meta and an undecodable row": (  # the meta is not written before the rows are read
        sql("DELETE FROM meta", "UPDATE transactions SET raw = x'0102' WHERE seq = 2"),
        ["table transactions, row seq 2", "raw does not decode"],
    ),
    "a rollback-journal database": (  # its header is not turned back to WAL before the check
        sql("PRAGMA journal_mode=DELETE", "UPDATE transactions SET raw = x'0102' WHERE seq = 2"),
        ["table transactions, row seq 2", "raw does not decode"],
    ),
    "an id stored as text that is no UTF-8": (
        sql("UPDATE transactions SET id = CAST(x'ff00fe' AS TEXT) WHERE seq = 2"),
        ["table transactions, row seq 2", "id: expected {id2}", "got text"],
    ),
    "a snapshot of another genesis": (
        put_snapshot_of_another_genesis,
        ["table meta, key 'snapshot'", "snapshot: expected network", "with genesis"],
    ),
    "no meta and a snapshot of another genesis": (
        lambda path: put_snapshot_of_another_genesis(path, "DELETE FROM meta"),
        ["table meta, key 'snapshot'", "snapshot: expected network"],
    ),
    "a smashed table page": (
        smash("transactions"),
        ["integrity check: database disk image is malformed"],
    ),
    "a smashed index page": (
        smash("sqlite_autoindex_transactions_1"),
        ["integrity check", "expected ok, got"],
    ),
    "a truncated file": (truncate, ["database disk image is malformed"]),
    "no database at all": (
        lambda path: path.write_bytes(b"not a database, " * 512),
        ["file is not a database"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_data_dir_stops_the_start_with_one_line(
    case: str, stored: Path, tmp_path: Path
) -> None:
    damage, fragments = CASES[case]
    data_dir = damaged(stored, tmp_path, damage)
    before = fingerprint(data_dir)
    code, err = start_error(data_dir)
    assert "Traceback" not in err, err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"tangle node: corrupt database {data_dir / DB}"), line
    for fragment in fragments:
        assert fragment.replace("{id2}", expected_id(stored, 2)) in line, line
    assert fingerprint(data_dir) == before  # nothing written, nothing repaired


def one_line(code: int, err: str) -> str:
    assert "Traceback" not in err, err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "damage",
    ["UPDATE transactions SET raw = x'0102' WHERE seq = 2", "DELETE FROM meta"],
    ids=["a bad row in the log", "no meta in the log"],
)
def test_a_crash_copy_keeps_its_log(damage: str, stored: Path, tmp_path: Path) -> None:
    """A copy taken while the database is open (as a crash or kill -9 leaves it): the
    change is only in the log (-wal) with its index (-shm). A refused start neither merges
    the log into the database nor deletes it: all three files stay byte for byte."""
    source = damaged(stored, tmp_path, lambda _: None)
    db = sqlite3.connect(source / DB, isolation_level=None)
    try:
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute(damage)
        if damage.startswith("DELETE"):  # and a bad row, so that the start is refused
            db.execute("UPDATE transactions SET raw = x'0102' WHERE seq = 2")
        data_dir = tmp_path / "crashed"
        data_dir.mkdir()
        for path in source.glob(f"{DB}*"):
            shutil.copyfile(path, data_dir / path.name)
    finally:
        db.close()
    before = fingerprint(data_dir)
    assert {f"{DB}-wal", f"{DB}-shm"} <= set(before)
    assert (data_dir / f"{DB}-wal").stat().st_size > 0
    line = one_line(*start_error(data_dir))
    assert line.startswith(f"tangle node: corrupt database {data_dir / DB}"), line
    assert "table transactions, row seq 2" in line, line
    assert "raw does not decode" in line, line
    assert fingerprint(data_dir) == before


def test_an_undamaged_copy_starts(
    stored: Path, tmp_path: Path, spawn: Callable[..., NodeProcess]
) -> None:
    """The fixture's data dir itself is sound: the failures above are the damage's."""
    data_dir = damaged(stored, tmp_path, lambda _: None)
    node = spawn(data_dir.name)
    assert node.get("/api/v1/info").json["transactions"] >= 4
