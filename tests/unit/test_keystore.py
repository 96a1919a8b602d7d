"""The keystore file, its backup line, payment URIs and top-up files (no node)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import nacl.exceptions
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tangle.address import encode_address
from wallet import keystore
from wallet.errors import BadFile, KeystoreCorrupt, UsageError, WrongPassword
from wallet.fleet import parse_topup_file, plan_topups
from wallet.keys import derive_keypair
from wallet.keystore import (
    KDF_PRESETS,
    backup_string,
    load_seed,
    parse_backup,
    save_keystore,
)
from wallet.state import Policy
from wallet.uri import PaymentRequest, format_payment_uri, parse_amount, parse_payment_uri

FAST = KDF_PRESETS["minimum"]
SEED = bytes(range(32))
ALICE = encode_address(derive_keypair(SEED, 0).address)
BOB = encode_address(derive_keypair(SEED, 1).address)


def test_round_trip_file_mode_and_contents(tmp_path: Path) -> None:
    path = tmp_path / "w" / "keystore.json"
    save_keystore(path, SEED, "correct horse", FAST)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_text()
    assert SEED.hex() not in raw
    doc = json.loads(raw)
    assert doc["version"] == 1
    assert doc["kdf"]["name"] == "argon2id"
    assert (doc["kdf"]["opslimit"], doc["kdf"]["memlimit"]) == (FAST.opslimit, FAST.memlimit)
    assert doc["primary"] == ALICE
    assert load_seed(path, "correct horse") == SEED
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_wrong_password_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    save_keystore(path, SEED, "right", FAST)
    with pytest.raises(WrongPassword, match=r"wrong password for keystore .*keystore\.json"):
        load_seed(path, "wrong")


def test_corrupted_files(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    save_keystore(path, SEED, "pw", FAST)
    doc = json.loads(path.read_text())
    flipped = bytearray(bytes.fromhex(doc["ciphertext"]))
    flipped[3] ^= 1
    path.write_text(json.dumps({**doc, "ciphertext": flipped.hex()}))
    with pytest.raises(WrongPassword):  # authenticated: a changed byte never opens
        load_seed(path, "pw")
    path.write_text(json.dumps({k: v for k, v in doc.items() if k != "nonce"}))
    with pytest.raises(KeystoreCorrupt, match="missing or malformed field"):
        load_seed(path, "pw")
    path.write_text(json.dumps({**doc, "kdf": {**doc["kdf"], "memlimit": 1}}))
    with pytest.raises(KeystoreCorrupt, match="out of range"):
        load_seed(path, "pw")
    path.write_text('{"version": 1, "kdf"')
    with pytest.raises(KeystoreCorrupt, match="not JSON"):
        load_seed(path, "pw")
    with pytest.raises(UsageError, match="no keystore at"):
        load_seed(tmp_path / "nothing.json", "pw")


@given(st.binary(min_size=32, max_size=32))
def test_backup_round_trip(seed: bytes) -> None:
    line = backup_string(seed)
    assert line.startswith("tgl-seed:")
    assert parse_backup(line) == seed
    assert parse_backup("  " + line.upper().replace("-", " ") + "\n") == seed


@given(
    st.binary(min_size=32, max_size=32),
    st.integers(min_value=0, max_value=71),
    st.sampled_from("0123456789abcdef"),
)
def test_a_mistyped_backup_fails_its_checksum(seed: bytes, position: int, digit: str) -> None:
    line = backup_string(seed)
    body = line[len("tgl-seed:") :].replace("-", "")
    if body[position] == digit:
        return
    typo = body[:position] + digit + body[position + 1 :]
    with pytest.raises(UsageError, match="checksum does not match"):
        parse_backup("tgl-seed:" + typo)


def test_backup_errors() -> None:
    with pytest.raises(UsageError, match="expected 72 hex digits"):
        parse_backup("tgl-seed:abcd")
    with pytest.raises(UsageError, match="'g' is not a hex digit"):
        parse_backup("tgl-seed:" + "g" * 72)


def test_payment_uri() -> None:
    alice = derive_keypair(SEED, 0).address
    uri = format_payment_uri(PaymentRequest(alice, 25, "coffee & cake"))
    assert uri == f"tangle:{ALICE}?amount=25&label=coffee%20%26%20cake"
    assert parse_payment_uri(uri) == PaymentRequest(alice, 25, "coffee & cake")
    assert parse_payment_uri(f"tangle:{ALICE}") == PaymentRequest(alice)
    with pytest.raises(UsageError, match="expected a whole number"):
        parse_payment_uri(f"tangle:{ALICE}?amount=1.5")
    with pytest.raises(UsageError, match="unknown parameter 'memo'"):
        parse_payment_uri(f"tangle:{ALICE}?memo=x")
    typo = ALICE[:-1] + ("q" if ALICE[-1] != "q" else "p")
    with pytest.raises(UsageError, match=r"invalid address: .*checksum mismatch"):
        parse_payment_uri(f"tangle:{typo}?amount=1")
    with pytest.raises(UsageError, match="expected tangle:"):
        parse_payment_uri(f"bitcoin:{ALICE}")


def test_topup_file_reports_every_bad_row() -> None:
    devices = {"pump": ALICE}
    text = (
        "name_or_address,amount,idempotency_key\n"
        "pump,10\n"
        f"{BOB[:-1]}x,5\n"
        "heater,5\n"
        f"{BOB},zero\n"
        f"{BOB},0\n"
        f"{ALICE},3\n"
        f"{BOB},4,k1\n"
        f"{BOB[:-1]}{BOB[-1]},4,k1,extra\n"
    ).encode()
    with pytest.raises(BadFile) as bad:
        parse_topup_file(text, "f.csv", devices, lambda _k: None)
    lines = [line for line, _ in bad.value.problems]
    assert lines == [3, 4, 5, 6, 7, 9]
    message = str(bad.value)
    assert "nothing was paid" in message
    assert "line 4: 'heater': not a fleet device" in message
    assert "line 5: amount 'zero' is not a whole number" in message
    assert "line 7: " in message
    assert "paid on line 2 too" in message


def test_topup_file_keys() -> None:
    data = f"pump,10\n{BOB},4,order-7\n".encode()
    rows = parse_topup_file(data, "f.csv", {"pump": ALICE}, lambda _k: None)
    assert [(r.line, r.device, r.address, r.amount) for r in rows] == [
        (1, "pump", ALICE, 10),
        (2, None, BOB, 4),
    ]
    assert rows[0].key == f"file:f.csv:{ALICE}"
    assert rows[1].key == "order-7"
    again = parse_topup_file(b"# moved\n" + data, "dir/f.csv", {"pump": ALICE}, lambda _k: None)
    assert [r.key for r in again] == [r.key for r in rows]  # the same name, the same keys
    tagged = parse_topup_file(data, "f.csv", {"pump": ALICE}, lambda _k: None, "week-2")
    assert tagged[0].key == f"week-2:{ALICE}"
    with pytest.raises(BadFile, match="key 'order-7' already paid 9"):
        parse_topup_file(data, "f.csv", {"pump": ALICE}, lambda k: (BOB, 9) if k else None)


def test_plan_topups_respects_min_target_and_cap() -> None:
    policies = [Policy("a", 100, 300, None), Policy("b", 100, 300, 250), Policy("c", 10, 20, 5)]
    plans = plan_topups(policies, {"a": 40, "b": 50, "c": 30}, {"b": 100})
    assert [(p.device, p.amount, p.cap_left) for p in plans] == [("a", 260, None), ("b", 150, 150)]
    plans = plan_topups(policies, {"a": 100, "b": 99, "c": 0}, {"b": 250, "c": 2})
    assert [(p.device, p.amount, p.cap_left) for p in plans] == [("b", 0, 0), ("c", 3, 3)]


@pytest.mark.parametrize("text", ["1_000", "²", "١٢", "+5", "１２", "1e3", " "])
def test_amounts_take_ascii_digits_only(text: str) -> None:
    with pytest.raises(UsageError, match="expected a whole number"):
        parse_amount(text)
    with pytest.raises(UsageError, match="expected a whole number"):
        parse_payment_uri(f"tangle:{ALICE}?amount={text.replace('+', '%2B')}")
    with pytest.raises(BadFile, match="is not a whole number"):
        parse_topup_file(f"{ALICE},{text}\n".encode(), "f.csv", {}, lambda _k: None)
    assert parse_amount(" 1000 ") == 1000


def test_the_password_hashing_failing_is_a_damaged_keystore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keystore.json"
    save_keystore(path, SEED, "pw", KDF_PRESETS["minimum"])

    def no_memory(*_args: object, **_kw: object) -> bytes:
        raise nacl.exceptions.RuntimeError("could not allocate memory")

    monkeypatch.setattr(keystore.argon2id, "kdf", no_memory)
    with pytest.raises(KeystoreCorrupt, match="the password hashing failed") as failed:
        load_seed(path, "pw")
    assert failed.value.exit_code == 8
