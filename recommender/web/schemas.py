"""Request bodies of the API (a feedback row, a correction, a withdrawal, a new token) and the shapes
of what it answers where clients need to know them (feedback rows, errors).

Bodies are strict: a JSON string is not a number, ``0`` is not a date. Every value a feedback row
holds also goes through :func:`recommender.store.check_feedback_values` (the store's bounds: the
date in 1949-10-01 … today in Asia/Shanghai, a finite amount, no control characters in the note),
each field on its own so that a 422 names the field it blames.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from typing_extensions import TypedDict

from recommender import store

if TYPE_CHECKING:
    FeedbackStage = str
else:
    # Every stage of features.schema.STAGES except 线索 (store.FEEDBACK_STAGES): one string
    # literal each, so a bad stage is a 422 that lists the allowed ones and the schema an enum.
    FeedbackStage = Literal[store.FEEDBACK_STAGES]

# Ids in the store are SQL INTEGER: 32 bits in PostgreSQL, so a path id is at most 2**31 - 1
# (a larger one overflowed SQLite's 64-bit integer and answered 500)
MAX_ID: Final = 2**31 - 1
MAX_NOTE_CHARS: Final = 2000
MAX_AMOUNT_CNY: Final = 1e14  # 100万亿元: more than any one investment; 1e300 is a typing slip
OUTCOME_ID_PATTERN: Final = r"^fb-[0-9a-f]{16}$"
# Any character but those store.check_feedback_values refuses in a note (store.CONTROL_CHARACTERS;
# tests/recommender/web/test_feedback.py checks the two agree on every code point)
_TEXT_CHAR: Final = "[^" + store.CONTROL_CHARACTERS[1:]
NOTE_PATTERN: Final = f"^{_TEXT_CHAR}*$"
# A name or reason: no control character at all, and at least one character that str.strip()
# keeps (the class leaves out every Unicode space, so a match is never blank after strip)
_LINE_CHAR: Final = r"[^\x00-\x1f\x7f]"
_VISIBLE_CHAR: Final = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]"
LINE_PATTERN: Final = f"^{_LINE_CHAR}*{_VISIBLE_CHAR}{_LINE_CHAR}*$"
# What features.text.normalize_text turns into nothing or a space (controls, spaces, soft hyphen,
# zero-width characters): search text needs one other character (a test checks every code point)
SEARCH_BLANK: Final = r"\x00-\x20\x7f-\xa0\xad\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
SEARCH_PATTERN: Final = f"^[\\s\\S]*[^{SEARCH_BLANK}][\\s\\S]*$"
# The OpenAPI document replaces the date's pattern by the calendar dates from 1949-10-01 to today
# (recommender.web.contract); the key marks where
EVENT_DATE_MARK: Final = "x-sansetu-event-date"
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SAFE_DAY: Final = dt.date(2000, 1, 1)  # passes the store's date check: lets each field be checked alone


def field_problem(field: str, value: Any) -> str | None:
    """What :func:`store.check_feedback_values` says about one feedback field alone, else None."""
    values: dict[str, Any] = {"stage": store.FEEDBACK_STAGES[0], "on": _SAFE_DAY, "note": None, "amount_cny": None}
    values["on" if field == "date" else field] = value
    try:
        store.check_feedback_values(**values)
    except ValueError as exc:
        return str(exc)
    return None


def _checked(field: str) -> AfterValidator:
    def check(value: Any) -> Any:
        problem = field_problem(field, value)
        if problem is not None:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def _matching(pattern: str, problem: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def _iso_date(value: Any) -> Any:
    """A ``YYYY-MM-DD`` calendar date (a ``date`` passes); nothing else, not even a number of seconds."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("date must be a calendar date written YYYY-MM-DD")


FeedbackDate = Annotated[
    dt.date,
    BeforeValidator(_iso_date),
    _checked("date"),
    WithJsonSchema(
        {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", EVENT_DATE_MARK: True,
         "description": "a calendar date YYYY-MM-DD from 1949-10-01 to today in Asia/Shanghai"}
    ),
]  # fmt: skip
FeedbackNote = Annotated[
    str, Field(max_length=MAX_NOTE_CHARS, json_schema_extra={"pattern": NOTE_PATTERN}), _checked("note")
]
FeedbackAmount = Annotated[
    float, Field(ge=0, le=MAX_AMOUNT_CNY, allow_inf_nan=False, description="CNY"), _checked("amount_cny")
]
NodeId = Annotated[str, Field(min_length=1, max_length=100)]
_STRICT = ConfigDict(extra="forbid", strict=True)


class FeedbackIn(BaseModel):
    """A stage transition recorded by an analyst."""

    model_config = _STRICT

    enterprise_id: str = Field(min_length=18, max_length=18)
    node_id: NodeId
    stage: FeedbackStage
    date: FeedbackDate | None = None
    note: FeedbackNote | None = None
    amount_cny: FeedbackAmount | None = None


class FeedbackChange(TypedDict, total=False):
    """A correction: the fields that change (``note`` and ``amount_cny`` may be null to clear them)."""

    __pydantic_config__ = ConfigDict(  # type: ignore[misc]
        extra="forbid", strict=True, json_schema_extra={"minProperties": 1}
    )

    node_id: NodeId
    stage: FeedbackStage
    date: FeedbackDate
    note: FeedbackNote | None
    amount_cny: FeedbackAmount | None


class WithdrawIn(BaseModel):
    model_config = _STRICT

    reason: Annotated[
        str,
        Field(min_length=1, max_length=500, json_schema_extra={"pattern": LINE_PATTERN}, description="e.g. 录入重复"),
        _matching(LINE_PATTERN, "reason must have a visible character and no control characters"),
    ]


class TokenIn(BaseModel):
    model_config = _STRICT

    name: Annotated[
        str,
        Field(min_length=1, max_length=200, json_schema_extra={"pattern": LINE_PATTERN}),
        _matching(LINE_PATTERN, "name must have a visible character and no control characters"),
    ]
    role: store.Role


class FeedbackRow(BaseModel):
    """A stored feedback row: active unless corrected (``superseded_by``) or withdrawn; ``problems``
    lists what the store's checks say about values stored before they existed (empty when none)."""

    id: int | None = None
    outcome_id: str
    enterprise_id: str
    node_id: str
    stage: str
    date: str
    amount_cny: float | None = None
    note: str | None = None
    author: str
    created_at: str
    corrects: str | None = None
    superseded_by: str | None = None
    withdrawn_at: str | None = None
    withdrawn_by: str | None = None
    withdraw_reason: str | None = None
    active: bool
    problems: list[str]


class NewToken(BaseModel):
    name: str
    role: store.Role
    token: str = Field(description="shown once; only its sha256 is stored")
