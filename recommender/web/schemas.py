"""Request bodies of the API: a feedback row and a new token."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from recommender import store

if TYPE_CHECKING:
    FeedbackStage = str
else:
    # Every stage of features.schema.STAGES except 线索 (store.FEEDBACK_STAGES): one string
    # literal each, so a bad stage is a 422 that lists the allowed ones and the schema an enum.
    FeedbackStage = Literal[store.FEEDBACK_STAGES]

# Ids in the store are SQL INTEGER: 32 bits in PostgreSQL, so a path id is at most 2**31 - 1
# (a larger one overflowed SQLite's 64-bit integer and answered 500)
MAX_ID = 2**31 - 1


class FeedbackIn(BaseModel):
    """A stage transition recorded by an analyst."""

    model_config = ConfigDict(extra="forbid")

    enterprise_id: str = Field(min_length=18, max_length=18)
    node_id: str = Field(min_length=1, max_length=100)
    stage: FeedbackStage
    date: dt.date | None = None
    note: str | None = Field(default=None, max_length=2000)
    amount_cny: float | None = Field(default=None, ge=0)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: store.Role
