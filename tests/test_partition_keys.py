"""Partition keys are readable and round-trip exactly for any value."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dj_dagster.heading import Attribute, Heading
from dj_dagster.partition_keys import PartitionKeyError, decode_key, encode_key
from dj_dagster.types import parse_type

HEADING = Heading.of([
    Attribute("subject", parse_type("varchar(64)"), in_key=True),
    Attribute("session", parse_type("int32"), in_key=True),
    Attribute("day", parse_type("date"), in_key=True),
    Attribute("uid", parse_type("uuid"), in_key=True),
    Attribute("weight", parse_type("float64"), in_key=True),
    Attribute("stamp", parse_type("datetime"), in_key=True),
])

texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(subject=texts, session=st.integers(-(2**31), 2**31 - 1), day=st.dates(), uid=st.uuids(),
       weight=st.floats(allow_nan=False, allow_infinity=False),
       stamp=st.datetimes(min_value=dt.datetime(1900, 1, 1)))
def test_round_trip(subject, session, day, uid, weight, stamp):
    key = dict(subject=subject, session=session, day=day, uid=uid, weight=weight, stamp=stamp)
    text = encode_key(HEADING, key)
    assert decode_key(HEADING, text) == key
    assert text.count("/") == len(key) - 1  # reserved characters never leak into the layout
    assert "|" not in text and "," not in text and "..." not in text and "\n" not in text


def test_readable():
    key = dict(subject="m01", session=3, day=dt.date(2024, 5, 1), uid=uuid.UUID(int=7), weight=1.5,
               stamp=dt.datetime(2024, 5, 1, 12, 30))
    text = encode_key(HEADING, key, ["subject", "session"])
    assert text == "subject=m01/session=3"
    assert encode_key(HEADING, {"subject": "a/b|c,d=e", "session": 1}, ["subject", "session"]) == \
        "subject=a%2Fb%7Cc%2Cd%3De/session=1"
    assert encode_key(HEADING, {"subject": "Ünïcødé", "session": 1}, ["subject", "session"]).startswith(
        "subject=Ünïcødé")


@pytest.mark.parametrize("bad", [
    "subject=m01", "session=1/subject=m01", "subject=m01/session=x", "subject=m01/session=1/extra=2",
    "subject=%ZZ/session=1", "subject=m01;DROP TABLE x/session=1 OR 1=1",
])
def test_bad_keys_raise(bad):
    with pytest.raises(PartitionKeyError):
        decode_key(HEADING, bad, ["subject", "session"], table="lab.session")
