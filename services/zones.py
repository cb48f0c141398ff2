"""Time zones people type: canonical IANA location zones only, with a suggestion.

`tz:EST` is a fixed UTC−5 with no daylight saving, and `Etc/GMT-5` is UTC+5 (POSIX signs
are inverted): both load in zoneinfo, and both would silently post a digest at the wrong
hour for half the year. A typed zone must be a canonical location zone (tzdata's
zone1970.tab / zone.tab, plus UTC); a near miss in spelling or case is answered with the
right spelling (`asia/kolkata` → `Asia/Kolkata`), an old alias with its canonical name
where it has one among the location zones (`Asia/Calcutta` → `Asia/Kolkata`).
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib.resources import files

UTC_NAMES = frozenset({"UTC", "Etc/UTC"})


@lru_cache(maxsize=1)
def canonical_zones() -> frozenset[str]:
    names: set[str] = set(UTC_NAMES)
    for table in ("zone1970.tab", "zone.tab"):
        text = files("tzdata").joinpath("zoneinfo", table).read_text(encoding="utf-8")
        for line in text.splitlines():
            if line and not line.startswith("#"):
                names.add(line.split("\t")[2])
    return frozenset(names)


def _read(name: str) -> bytes | None:
    if ".." in name.split("/"):
        return None
    try:
        return files("tzdata").joinpath("zoneinfo", *name.split("/")).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError):
        return None


@lru_cache(maxsize=1)
def _canonical_by_data() -> dict[bytes, str]:
    by_data: dict[bytes, str] = {}
    for zone in sorted(canonical_zones()):
        data = _read(zone)
        if data is not None:
            by_data.setdefault(data, zone)
    return by_data


def _alias_target(name: str) -> str | None:
    """The canonical zone compiled to the same rules as `name` (an old alias)."""
    data = _read(name) if "/" in name else None
    return None if data is None else _canonical_by_data().get(data)


def canonical_zone(name: str) -> str:
    """`name` if it is a canonical zone; else ValueError saying what to write instead."""
    name = name.strip()
    zones = canonical_zones()
    if name in zones:
        return name
    by_case = {z.lower(): z for z in zones}
    if name.lower() in by_case:
        raise ValueError(f"write the time zone as {by_case[name.lower()]} (not {name})")
    alias = _alias_target(name)
    if alias is not None:
        raise ValueError(f"{name} is an old name: write {alias}")
    if name.upper().startswith(("ETC/", "GMT", "EST", "MST", "HST", "EET", "CET", "WET")):
        raise ValueError(
            f"{name} is a fixed offset without the local daylight saving rules; write the "
            "city's zone, e.g. America/New_York, Europe/Berlin or Asia/Kolkata"
        )
    close = difflib.get_close_matches(name, sorted(zones), n=2, cutoff=0.6)
    hint = " or ".join(close) if close else "a zone such as Europe/Berlin"
    raise ValueError(f"unknown time zone {name}: did you mean {hint}?")
