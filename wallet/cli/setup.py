"""Creating a wallet (``init``, ``restore``) and its addresses (``address``,
``check-address``): the files a new wallet writes, and the restore scan."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
from pathlib import Path
from typing import Any

from tangle.address import decode_address, encode_address
from tangle.errors import AddressError
from wallet.cli import render
from wallet.cli.context import ENV_KDF, Context, password
from wallet.errors import FileAccessError, UsageError
from wallet.keys import derive_keypair
from wallet.keystore import (
    DEFAULT_KDF,
    backup_string,
    kdf_preset,
    new_seed,
    parse_backup,
    save_keystore,
)
from wallet.ops import KEYSTORE_FILE, STATE_FILE
from wallet.state import WalletState

RESTORE_GAP = 5
"""``restore --scan`` stops after this many unused addresses in a row."""


def kdf_name(args: argparse.Namespace) -> str:
    return str(args.kdf or os.environ.get(ENV_KDF) or DEFAULT_KDF)


def check_new(directory: Path) -> Path:
    """The keystore path for a new wallet in ``directory``; an error if one is there."""
    path = directory / KEYSTORE_FILE
    if path.exists():
        raise UsageError(f"a wallet exists already at {path}; choose another --wallet-dir")
    if (directory / STATE_FILE).exists():
        raise UsageError(
            f"{directory / STATE_FILE} is left from another wallet (its keystore is gone); "
            "move it away or choose another --wallet-dir"
        )
    return path


def create(ctx: Context, seed: bytes) -> Path:
    """The keystore and state file of a new wallet; neither is left behind on a failure."""
    directory = ctx.directory
    path = check_new(directory)
    params = kdf_preset(kdf_name(ctx.args))
    secret = password(confirm=True)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise FileAccessError(directory, exc.strerror or str(exc)) from None
    save_keystore(path, seed, secret, params)
    try:
        state = WalletState(directory / STATE_FILE)
        try:
            state.add_address(0, encode_address(derive_keypair(seed, 0).address), "primary")
        finally:
            state.close()
    except BaseException:
        remove_new_wallet(directory)
        raise
    return path


def remove_new_wallet(directory: Path) -> None:
    """Undo :func:`create` (whose checks made sure both files are new)."""
    for name in (KEYSTORE_FILE, STATE_FILE, STATE_FILE + "-wal", STATE_FILE + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()


def read_file(name: str) -> bytes:
    """A file the user named; a usage error when it cannot be read."""
    path = Path(name).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def write_backup(name: str, line: str) -> Path:
    """Create ``name`` (never over an existing file, mode 0600) holding the backup line.

    Raises:
        UsageError: the file exists or cannot be created or written; nothing is left.
    """
    path = Path(name).expanduser()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists; the backup is never written over a file") from None
    except OSError as exc:
        raise UsageError(f"backup file {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write((line + "\n").encode())
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        if isinstance(exc, OSError):
            raise UsageError(f"backup file {path}: {exc.strerror or exc}") from None
        raise
    return path


async def cmd_init(ctx: Context) -> int:
    seed = new_seed()
    line = backup_string(seed)
    backup: Path | None = None
    if ctx.args.backup:
        check_new(ctx.directory)  # no backup file for a wallet that cannot be created
        backup = write_backup(ctx.args.backup, line)  # first: the line is never lost
    try:
        path = create(ctx, seed)
    except BaseException:
        if backup is not None:  # its wallet was never made
            with contextlib.suppress(OSError):
                backup.unlink()
        raise
    primary = encode_address(derive_keypair(seed, 0).address)
    data: dict[str, Any] = {"keystore": str(path), "address": primary}
    if backup is not None:
        data["backup_file"] = str(backup)
        ctx.emit(
            data,
            [
                f"wallet created: {path}",
                f"primary address {primary}",
                f"backup written to {backup}: keep it offline; it restores every address",
            ],
        )
    else:
        data["backup"] = line
        ctx.emit(
            data,
            [
                f"wallet created: {path}",
                f"primary address {primary}",
                "",
                "Write down this backup line and keep it offline. It is the only way to",
                "restore the wallet if the password or this computer is lost:",
                "",
                f"    {line}",
            ],
        )
    return 0


async def cmd_restore(ctx: Context) -> int:
    if ctx.args.from_file:
        text = read_file(ctx.args.from_file).decode(errors="replace")
    else:
        try:
            text = getpass.getpass("backup line (tgl-seed:…): ")
        except EOFError:
            raise UsageError("no backup line given: use --from-file FILE") from None
    seed = parse_backup(text)
    path = create(ctx, seed)
    wallet = ctx.wallet
    wallet._seed = seed
    for _ in range(1, ctx.args.addresses):
        wallet.new_address()
    if ctx.args.scan:
        unused = 0
        index = len(wallet.state.addresses())
        while unused < RESTORE_GAP:
            address = derive_keypair(seed, index).address
            info = await wallet.client.address(address)
            if info.outputs:
                while len(wallet.state.addresses()) <= index:
                    wallet.new_address()
                unused = 0
            else:
                unused += 1
            index += 1
    rows = wallet.state.addresses()
    ctx.emit(
        {"keystore": str(path), "addresses": [r.address for r in rows]},
        [f"wallet restored: {path}", *(f"  #{r.index} {r.address}" for r in rows)],
    )
    return 0


async def cmd_address(ctx: Context) -> int:
    wallet = ctx.wallet
    if ctx.args.new:
        row = wallet.new_address(ctx.args.label or "")
        ctx.emit(
            {"index": row.index, "address": row.address, "label": row.label},
            f"#{row.index} {row.address} {row.label}".rstrip(),
        )
        return 0
    if ctx.args.label is not None:
        if ctx.args.index is None:
            raise UsageError("--label without --new needs --index I (the address to label)")
        if ctx.args.index not in {r.index for r in wallet.state.addresses()}:
            raise UsageError(f"--index: the wallet has no address #{ctx.args.index}")
        wallet.state.set_label(ctx.args.index, ctx.args.label)
    rows = wallet.state.addresses()
    ctx.emit(
        [{"index": r.index, "address": r.address, "label": r.label} for r in rows],
        [f"#{r.index} {r.address} {r.label}".rstrip() for r in rows],
    )
    return 0


async def cmd_check_address(ctx: Context) -> int:
    try:
        raw = decode_address(ctx.args.address.strip())
    except AddressError as exc:
        if ctx.json:
            ctx.out(json.dumps({"valid": False, "error": str(exc)}))
        else:
            ctx.err(f"{render.PROG}: invalid address: {exc}")
        return render.EXIT_USER_ERROR
    canonical = encode_address(raw)
    ctx.emit(
        {"valid": True, "address": canonical, "hex": raw.hex()},
        f"valid address {canonical}\nhex {raw.hex()}",
    )
    return 0
