"""Stream vouchers: rounding, the canonical signed encoding, and every refusal rule."""

from __future__ import annotations

import pytest

from tangle.signing import Keypair
from wallet.errors import VoucherRefused
from wallet.x402.streams import (
    StreamSession,
    Voucher,
    bytes_covered,
    price_of,
    sign_voucher,
    voucher_from_header,
)

CLIENT = Keypair(bytes([1]) * 32)
OTHER = Keypair(bytes([2]) * 32)
SID = bytes(range(16))


def session(**kw: int) -> StreamSession:
    terms = {"deposit": 100, "price": 3, "per_bytes": 10, "window": 40, "size": 1000} | kw
    return StreamSession(session=SID, payer_key=CLIENT.public_key, **terms)


def test_price_rounds_the_total_up_to_a_whole_unit() -> None:
    assert [price_of(n, 3, 10) for n in (0, 1, 10, 11, 40, 41)] == [0, 1, 3, 4, 12, 13]
    assert bytes_covered(100, 3, 10) == 333
    assert price_of(333, 3, 10) == 100 <= 100 < price_of(334, 3, 10)


def test_voucher_encoding_is_fixed_and_round_trips() -> None:
    voucher = sign_voucher(CLIENT, SID, 1, 12)
    assert voucher.message() == b"tangle/x402-voucher/v1\x00" + SID + bytes(7) + b"\x01" + (
        bytes(7) + b"\x0c"
    )
    assert voucher_from_header(voucher.to_header()) == voucher
    with pytest.raises(VoucherRefused, match="invalid_voucher"):
        voucher_from_header('{"session": "00", "sequence": 1, "amount": "1", "signature": ""}')
    with pytest.raises(VoucherRefused, match="invalid_voucher"):
        voucher_from_header("not json")


def test_windows_need_the_previous_voucher_and_stop_at_the_deposit() -> None:
    s = session()
    assert s.limit == 333
    assert s.next_window() == (0, 40)
    s.served = 40
    with pytest.raises(VoucherRefused, match="voucher_required"):
        s.next_window()
    s.accept(sign_voucher(CLIENT, SID, 1, 12))
    assert s.next_window() == (40, 80)
    s.served = 320
    s.sequence, s.vouched = 7, 96
    assert s.next_window() == (320, 333)  # the deposit covers 333 bytes, not 360
    s.served = 333
    s.accept(sign_voucher(CLIENT, SID, 8, 100))
    assert s.next_window() == (333, 333)  # nothing more: close and settle
    assert s.settlement() == (100, 0)


@pytest.mark.parametrize(
    ("voucher", "code"),
    [
        (sign_voucher(OTHER, SID, 2, 24), "bad_signature"),
        (Voucher(session=SID, sequence=2, amount=24, signature=bytes(64)), "bad_signature"),
        (sign_voucher(CLIENT, bytes(16), 2, 24), "wrong_session"),
        (sign_voucher(CLIENT, SID, 1, 24), "replayed_sequence"),
        (sign_voucher(CLIENT, SID, 3, 24), "sequence_gap"),
        (sign_voucher(CLIENT, SID, 2, 11), "amount_decreased"),
        (sign_voucher(CLIENT, SID, 2, 27), "amount_over_served"),
        (sign_voucher(CLIENT, SID, 2, 21), "amount_short"),
    ],
)
def test_bad_vouchers_are_refused_and_change_nothing(voucher: Voucher, code: str) -> None:
    s = session()
    s.served = 40
    s.accept(sign_voucher(CLIENT, SID, 1, 12))
    s.served = 80  # owes 24 now
    with pytest.raises(VoucherRefused) as refused:
        s.accept(voucher)
    assert refused.value.code == code
    assert (s.sequence, s.vouched) == (1, 12)
    s.accept(sign_voucher(CLIENT, SID, 2, 24))  # the right one still goes through
    assert s.settlement() == (24, 76)
