"""The keys of the audit chain's HMACs, kept outside the database.

A key ring is a list of `id:base64` entries (at least 32 random bytes each); the last one
is current and signs new events, the others only verify the events they signed (each
event stores its key id), so a key can be rotated by appending a new entry. Where the
ring comes from, first match wins:

1. `CROBOT_AUDIT_KEY`: the entries, comma-separated;
2. `CROBOT_AUDIT_KEY_FILE`: a file with one entry a line (`#` starts a comment);
3. SQLite only: `<database file>.audit-key`, created with mode 0600 on the first audit
   write, so `crobot demo` and `crobot audit verify` need no setup.

On PostgreSQL without 1 or 2 nothing is guessed: every replica must sign with the same
key, and a file made by whichever process wrote first would differ between hosts. Audit
writes (so every write) then fail with `AuditKeyMissing`, and `crobot serve` refuses to
start. Verifying never creates a key: without one it cannot verify.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MIN_KEY_BYTES = 32
KEY_FILE_SUFFIX = ".audit-key"
HOW = (
    "Set CROBOT_AUDIT_KEY to `id:base64-key` (e.g. the output of "
    "`python3 -c \"import base64,secrets; print('k1:' + "
    'base64.b64encode(secrets.token_bytes(32)).decode())"`) or CROBOT_AUDIT_KEY_FILE to a '
    "file holding such lines; see README, Audit trail."
)


class AuditKeyMissing(Exception):
    """No usable audit key: audit events can be neither written nor verified."""


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]
    current: str

    def key(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)

    @property
    def current_key(self) -> bytes:
        return self.keys[self.current]


def parse(entries: list[str], origin: str) -> Keyring:
    keys: dict[str, bytes] = {}
    current = None
    for raw in entries:
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not KEY_ID.fullmatch(key_id):
            raise AuditKeyMissing(f"{origin}: an entry is not `id:base64-key`. {HOW}")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise AuditKeyMissing(f"{origin}: key {key_id!r} is not base64. {HOW}") from None
        if len(key) < MIN_KEY_BYTES:
            raise AuditKeyMissing(
                f"{origin}: key {key_id!r} has {len(key)} bytes; at least {MIN_KEY_BYTES}."
            )
        if key_id in keys and keys[key_id] != key:
            raise AuditKeyMissing(f"{origin}: key id {key_id!r} is given twice.")
        keys[key_id], current = key, key_id
    if current is None:
        raise AuditKeyMissing(f"{origin} holds no key. {HOW}")
    return Keyring(keys, current)


def new_entry() -> str:
    return f"k{secrets.token_hex(4)}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def default_key_file(database_url: str) -> Path | None:
    """`<database file>.audit-key` for a file-backed SQLite database; else None."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return None
    name = url.database or ""
    if name in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    return Path(name).resolve().with_name(Path(name).name + KEY_FILE_SUFFIX)


def _read_file(path: Path) -> Keyring:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AuditKeyMissing(f"cannot read audit key file {path}: {exc.strerror}.") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("audit key file %s is readable by others; chmod 600 it", path)
    return parse(text.splitlines(), str(path))


def _create_file(path: Path) -> None:
    """Write a new key to `path` unless it exists; atomic, never half-written."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("# crobot audit chain HMAC key (id:base64); keep it secret, back it up.\n")
            fh.write(new_entry() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if another process was first: its key is used
            log.warning("created audit key file %s (mode 0600): back it up", path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class KeySource:
    """Where a database's audit keys come from (settings, or the environment)."""

    database_url: str
    keys: str | None = None
    key_file: Path | None = None

    @classmethod
    def from_env(cls, database_url: str) -> KeySource:
        file = os.environ.get("CROBOT_AUDIT_KEY_FILE") or None
        return cls(database_url, os.environ.get("CROBOT_AUDIT_KEY") or None, _path(file))

    def load(self, *, create: bool) -> Keyring:
        if self.keys:
            return parse(self.keys.split(","), "CROBOT_AUDIT_KEY")
        if self.key_file is not None:
            return _read_file(self.key_file)
        path = default_key_file(self.database_url)
        if path is None:
            raise AuditKeyMissing(f"no audit key configured for this database. {HOW}")
        if not path.exists():
            if not create:
                raise AuditKeyMissing(f"no audit key: {path} does not exist. {HOW}")
            _create_file(path)
        return _read_file(path)


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return Path(value) if value else None


_lock = threading.Lock()
_rings: dict[KeySource, Keyring] = {}


def source_of(session: Session) -> KeySource:
    """The key source of the `Database` the session came from (its `info`), else the
    environment's for the session's database."""
    source = session.info.get("audit_keys")
    if isinstance(source, KeySource):
        return source
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    return KeySource.from_env(url)


def keyring(session: Session, *, create: bool, fresh: bool = False) -> Keyring:
    """The key ring for this session's database: cached once loaded for writing (a
    rotation takes effect at restart); read again when `fresh` (verifying)."""
    source = source_of(session)
    if fresh:
        return source.load(create=create)
    with _lock:
        ring = _rings.get(source)
        if ring is None:
            ring = source.load(create=create)
            _rings[source] = ring
        return ring
