"""The pure parsing layer: tokens, options, flags, mentions, numbers, IDs, dates."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crobot.services.command_parser import Token, classify, parse_id, tokenize
from crobot.services.dates import parse_date, parse_weeks
from crobot.services.errors import UserError
from crobot.services.kpi_values import parse_value

WED = date(2026, 11, 25)  # a Wednesday


def test_tokenize_quotes_options_mentions() -> None:
    toks = tokenize(
        'add ONC-301 "First patient in" note:"two sites" <@U123ABC|priya.k> --late '
        "\u201csmart quotes\u201d A&amp;B"
    )
    assert [str(t) for t in toks] == [
        "add",
        "ONC-301",
        "First patient in",
        "note:two sites",
        "<@U123ABC|priya.k>",
        "--late",
        "smart quotes",
        "A&B",
    ]
    assert toks[2].quoted and not toks[1].quoted
    assert toks[3].raw == 'note:"two sites"'
    assert isinstance(toks[0], str) and isinstance(toks[0], Token)


def test_tokenize_keeps_angle_groups_and_rejects_open_quote() -> None:
    assert tokenize("<@U1|a b> x") == ["<@U1|a b>", "x"]
    assert tokenize("   ") == []
    assert tokenize('""') == [""]
    with pytest.raises(UserError, match="quote is not closed"):
        tokenize('add "oops')
    with pytest.raises(UserError, match="too long"):
        tokenize("x" * 5000)


def test_classify_sorts_words() -> None:
    args = classify(
        tokenize('"Site: Boston" due:next fri <@U9|x> <@W7> --shared —late 12'),
        options={"due"},
        flags={"shared", "late"},
    )
    assert args.positionals == ["Site: Boston", "12"]
    assert args.options == {"due": "next fri"}
    assert args.flags == {"shared", "late"}
    assert [m.user_id for m in args.mentions] == ["U9", "W7"]
    assert args.mentions[0].label == "x" and args.mentions[1].label is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("due:", "needs a value"),
        ("due:fri due:mon", "given twice"),
        ("plannd:fri", "Did you mean `planned`"),
        ("--lat", "Did you mean `--late`"),
        ("--", "Unknown flag"),
        ("@priya", "can't tell who"),
        ("<#C123|general>", "can't use"),
        ("<https://x.example|x>", "can't use"),
    ],
)
def test_classify_rejects(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        classify(tokenize(text), options={"planned", "due"}, flags={"late"})


def test_plain_strings_classify_like_tokens() -> None:
    args = classify(["due:fri", "Title with words"], options={"due"})
    assert args.options == {"due": "fri"} and args.positionals == ["Title with words"]


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("12", 12.0),
        ("12.5", 12.5),
        ("1,250", 1250.0),
        ("85%", 85.0),
        ("-3", -3.0),
        (".5", 0.5),
        ("1,5", 1.5),
        ("12,345,678", 12345678.0),
        ("1,1e3", 1100.0),
    ],
)
def test_numbers(word: str, value: float) -> None:
    assert parse_value(word).value == value


@pytest.mark.parametrize(
    "word", ["lots", "1e999", "nan", "inf", "12abc", "", "--1", ",", "1_0", "1,5,0", "1.2,5"]
)
def test_not_numbers(word: str) -> None:
    with pytest.raises(UserError):
        parse_value(word)


def test_ids() -> None:
    assert parse_id("12", "milestone") == 12 and parse_id("#7", "action") == 7
    for bad in ("0", "-1", "abc", "1234567890", "#", "1.5"):
        with pytest.raises(UserError, match="not a"):
            parse_id(bad, "milestone")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01", date(2026, 12, 1)),
        ("today", WED),
        ("Tomorrow", date(2026, 11, 26)),
        ("yesterday", date(2026, 11, 24)),
        ("wed", WED),  # today counts
        ("fri", date(2026, 11, 27)),
        ("friday", date(2026, 11, 27)),
        ("mon", date(2026, 11, 30)),
        ("next fri", date(2026, 12, 4)),
        ("next-fri", date(2026, 12, 4)),
        ("next mon", date(2026, 11, 30)),
        ("next wed", date(2026, 12, 2)),
        ("+3d", date(2026, 11, 28)),
        ("+2w", date(2026, 12, 9)),
        ("-1w", date(2026, 11, 18)),
    ],
)
def test_dates(text: str, expected: date) -> None:
    assert parse_date(text, WED) == expected


@pytest.mark.parametrize("text", ["someday", "2026-02-30", "26/11/2026", "+99999d", "next", "fri!"])
def test_bad_dates(text: str) -> None:
    with pytest.raises(UserError, match="YYYY-MM-DD"):
        parse_date(text, WED)


def test_weekday_resolution_in_the_users_today() -> None:
    # Late Thursday evening in New York is already Friday in Kolkata: "fri" differs.
    assert parse_date("fri", date(2026, 11, 26)) == date(2026, 11, 27)
    assert parse_date("fri", date(2026, 11, 27)) == date(2026, 11, 27)


def test_weeks() -> None:
    assert parse_weeks("8w") == 8 and parse_weeks("8") == 8 and parse_weeks("30d") == 5
    for bad in ("0w", "500w", "forever", "-2w"):
        with pytest.raises(UserError):
            parse_weeks(bad)


@given(st.text(max_size=200))
def test_tokenize_never_crashes(text: str) -> None:
    try:
        toks = tokenize(text)
    except UserError:
        return
    for t in toks:
        assert isinstance(t, Token)
    try:
        classify(toks, options={"due", "planned"}, flags={"late"})
    except UserError:
        pass


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)),
    st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
)
def test_weekday_properties(today: date, day: str) -> None:
    this = parse_date(day, today)
    nxt = parse_date("next " + day, today)
    assert 0 <= (this - today).days <= 6
    assert this.strftime("%a").lower() == day == nxt.strftime("%a").lower()
    assert nxt.isocalendar()[:2] != today.isocalendar()[:2] and 1 <= (nxt - today).days <= 13
