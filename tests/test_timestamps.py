"""Timestamps read by the pool's connections are rendered as RFC 3339 in UTC, exactly as the
API rendered the `datetime` psycopg used to build: in every session time zone and ISO DateStyle."""

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.database.engine import connect_with_backoff
from api.database.timestamps import rfc3339, utc_text

ZONES = ["UTC", "Etc/UTC", "GMT", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham", "America/Los_Angeles"]
MOMENTS = [
    datetime(2026, 11, 29, 6, 59, 9, 831432, tzinfo=UTC),
    datetime(2026, 11, 29, 6, 59, 9, tzinfo=UTC),  # no fraction
    datetime(2026, 11, 29, 6, 59, 9, 100000, tzinfo=UTC),  # PostgreSQL trims it to .1
    datetime(2026, 11, 29, 6, 59, 9, 1, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2))),  # given with an offset
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1900, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC),  # a day short of the end: any zone can show it
]


def expected_text(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, microseconds only when there are any (as orjson writes it)."""
    utc = moment.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


async def _read_back(url: str, moments: list[datetime], zone: str, datestyle: str) -> list[str]:
    connection = await connect_with_backoff(url, budget_seconds=10)
    try:
        settings = "select set_config('TimeZone', %s, false), set_config('DateStyle', %s, false)"
        await connection.execute(settings, [zone, datestyle])
        cursor = await connection.execute(
            "select moment from unnest(%s::timestamptz[]) with ordinality as m(moment, n) order by n", [moments]
        )
        return [rfc3339(moment) for (moment,) in await cursor.fetchall()]
    finally:
        await connection.close()


@pytest.mark.parametrize("datestyle", ["ISO, MDY", "ISO, DMY"])
@pytest.mark.parametrize("zone", ZONES)
def test_timestamps_are_read_as_the_api_writes_them_in_any_session_zone(admin_url, zone, datestyle):
    assert asyncio.run(_read_back(admin_url, MOMENTS, zone, datestyle)) == [expected_text(m) for m in MOMENTS]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    moments=st.lists(
        st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2400, 1, 1), timezones=st.just(UTC)),
        min_size=1,
        max_size=20,
    ),
    zone=st.sampled_from(ZONES),
)
def test_any_moment_reads_back_as_rfc3339(admin_url, moments, zone):
    assert asyncio.run(_read_back(admin_url, moments, zone, "ISO, MDY")) == [expected_text(m) for m in moments]


def test_iso_text_in_any_form_is_rewritten_in_utc():
    assert rfc3339("2026-11-29 06:59:09.8314+00") == "2026-11-29T06:59:09.831400Z"
    assert rfc3339("2026-11-29 06:59:09+00") == "2026-11-29T06:59:09Z"
    assert rfc3339("2026-11-29 12:29:09.1+05:30") == "2026-11-29T06:59:09.100000Z"  # another session zone
    assert rfc3339("2026-11-29T06:59:09.831432+00:00") == "2026-11-29T06:59:09.831432Z"  # PostgreSQL's JSON
    assert rfc3339("2026-11-29T06:59:09Z") == "2026-11-29T06:59:09Z"  # the API's own


@pytest.mark.parametrize("text", ["infinity", "11/29/2026 06:59:09 UTC", "2026-11-29 06:59:09+00 BC"])
def test_what_is_not_iso_8601_is_refused_not_misread(text):
    with pytest.raises(ValueError):
        rfc3339(text)


def test_utc_text_is_orjson_s_rendering():
    assert utc_text(datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == "2026-01-01T00:00:00Z"
