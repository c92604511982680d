"""Column constants and table schemas of sansetu's data model.

Every table the engine reads is validated against one of the schemas below after a raw file has
been mapped to these English snake_case names (see ``configs/column_maps``). Dates are
``datetime64[ns]`` (day precision), money is CNY (yuan) as ``float64``, ids are strings.

Tables
------
enterprises  one row per enterprise of the universe; key ``enterprise_id`` (统一社会信用代码).
presence     which enterprises sit in the zone, at which chain node, per year; key
             (``enterprise_id``, ``node_id``, ``year``).
assets       the zone's own funds, universities, labs, application scenarios and alumni networks;
             key ``asset_id``.
relations    typed, dated, weighted edges between enterprises and/or assets; key ``relation_id``.
             ``src`` → ``dst`` reads "src <relation_type> dst", e.g. supplier: src supplies dst.
signals      dated events of an enterprise; key ``signal_id``.
outcomes     historical approach records, one row per stage reached; key ``outcome_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Final, Literal, get_args

# ---------------------------------------------------------------- enterprises
COL_ENTERPRISE_ID: Final = "enterprise_id"  # 统一社会信用代码, 18 chars, check char verified
COL_NAME: Final = "name"
COL_STATUS: Final = "status"  # registration status as given (存续, 在业, 注销, 吊销, ...)
COL_IS_OPERATING: Final = "is_operating"  # derived from status
COL_PROVINCE: Final = "province"
COL_CITY: Final = "city"
COL_DISTRICT: Final = "district"
COL_FOUNDED: Final = "founded"  # date
COL_CAPITAL_CNY: Final = "registered_capital_cny"  # parsed from '5000万人民币' etc.
COL_EMPLOYEES: Final = "employees"
COL_INDUSTRY_CODE: Final = "industry_code"  # GB/T 4754-2017 class code, 4 digits, e.g. '3976'
COL_INDUSTRY_NAME: Final = "industry_name"
COL_BUSINESS_SCOPE: Final = "business_scope"
COL_DESCRIPTION: Final = "description"
COL_PRODUCTS: Final = "products"
COL_LISTED: Final = "listed"
COL_FINANCING_ROUND: Final = "financing_round"  # 天使轮, A轮, B轮, C轮, D轮及以后, IPO, 战略投资
COL_FINANCING_DATE: Final = "financing_date"
COL_EXTRA: Final = "extra"  # JSON object of columns the column map did not know

# ---------------------------------------------------------------- presence
COL_NODE_ID: Final = "node_id"
COL_YEAR: Final = "year"
COL_OUTPUT_VALUE_CNY: Final = "output_value_cny"
COL_TAX_CNY: Final = "tax_cny"
COL_IS_CHAIN_LEADER: Final = "is_chain_leader"

# ---------------------------------------------------------------- assets
COL_ASSET_ID: Final = "asset_id"
COL_ASSET_TYPE: Final = "asset_type"
COL_OWNER: Final = "owner"  # for scenarios: who opens it

# ---------------------------------------------------------------- relations
COL_RELATION_ID: Final = "relation_id"
COL_SRC_ID: Final = "src_id"
COL_SRC_TYPE: Final = "src_type"  # 'enterprise' | 'asset'
COL_DST_ID: Final = "dst_id"
COL_DST_TYPE: Final = "dst_type"
COL_RELATION_TYPE: Final = "relation_type"
COL_WEIGHT: Final = "weight"  # strength in (0, 1]
COL_DATE: Final = "date"

# ---------------------------------------------------------------- signals
COL_SIGNAL_ID: Final = "signal_id"
COL_SIGNAL_TYPE: Final = "signal_type"
COL_AMOUNT_CNY: Final = "amount_cny"

# ---------------------------------------------------------------- outcomes
COL_OUTCOME_ID: Final = "outcome_id"
COL_STAGE: Final = "stage"
COL_NOTE: Final = "note"
COL_FITS: Final = "fits"  # fit_marks: the analyst's verdict, True = the firm makes what the node needs
COL_MARKED_BY: Final = "marked_by"

# ---------------------------------------------------------------- vocabularies
ENTITY_TYPES: Final = ("enterprise", "asset")
ASSET_TYPES: Final = ("fund", "university", "lab", "scenario", "alumni_network")
RELATION_TYPES: Final = (
    "supplier",  # src supplies dst (a 'customer' record is stored swapped as supplier)
    "shareholder",  # src holds shares of dst
    "investor",  # src invested in dst (a financing round)
    "fund_portfolio",  # fund asset src has dst in its portfolio
    "alumni",  # university / alumni-network asset src: founders or executives of dst are alumni
    "lab_collaboration",  # lab or university asset src collaborates with dst
    "parent",  # src is the parent company of dst
)
SIGNAL_TYPES: Final = ("financing", "new_branch", "land_purchase", "hiring", "capacity_expansion")
STAGES: Final = ("线索", "接洽", "考察", "洽谈", "签约", "落地", "终止")
STAGE_ORDER: Final = {s: i for i, s in enumerate(STAGES[:-1])}  # 终止 ends a process, no order
FINANCING_ROUNDS: Final = ("天使轮", "A轮", "B轮", "C轮", "D轮及以后", "战略投资", "IPO")
OPERATING_STATUSES: Final = ("存续", "在业", "开业", "正常", "在营", "迁入")
NODE_STAGES: Final = ("upstream", "midstream", "downstream")
COLOURS: Final = ("red", "blue", "green")

# ---------------------------------------------------------------- bounds of values from a file
EVENT_DATE_MIN: Final = date(1949, 10, 1)
"""Earliest accepted event date (relations, signals, outcomes, financing): the founding of the PRC."""
FOUNDED_DATE_MIN: Final = date(1800, 1, 1)
"""Earliest accepted founding date (成立日期 of old firms may precede 1949; earlier than this is a typo)."""
DATE_TIMEZONE: Final = "Asia/Shanghai"
"""No accepted date lies after today, the calendar day in this time zone (``features.validate.today_in_zone``)."""

TableName = Literal["enterprises", "presence", "assets", "relations", "signals", "outcomes", "fit_marks"]
TABLES: Final[tuple[TableName, ...]] = get_args(TableName)
"""The seven tables, in ingest order (enterprises first: the others refer to them). ``fit_marks`` holds
the analysts' checks of the 待核实 sheet (does the firm make what the node needs); none is needed."""
RAW_TABLES: Final[tuple[TableName, ...]] = tuple(t for t in TABLES if t != "fit_marks")
"""The six tables a zone's registries and records supply (and the sample zone writes); ``fit_marks`` comes
from the analysts."""

DType = Literal["str", "float", "int", "bool", "date"]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a table: its dtype, whether a value is required, and allowed values."""

    name: str
    dtype: DType
    required: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSchema:
    """A table's columns and key. ``key`` columns together identify a row."""

    name: TableName
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]
    extra_columns: bool = field(default=False)  # unknown columns go to COL_EXTRA

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


def _c(name: str, dtype: DType, required: bool = False, choices: tuple[str, ...] = ()) -> ColumnSpec:
    return ColumnSpec(name, dtype, required, choices)


SCHEMAS: Final[dict[str, TableSchema]] = {
    "enterprises": TableSchema(
        "enterprises",
        (
            _c(COL_ENTERPRISE_ID, "str", True),
            _c(COL_NAME, "str", True),
            _c(COL_STATUS, "str"),
            _c(COL_IS_OPERATING, "bool"),
            _c(COL_PROVINCE, "str"),
            _c(COL_CITY, "str"),
            _c(COL_DISTRICT, "str"),
            _c(COL_FOUNDED, "date"),
            _c(COL_CAPITAL_CNY, "float"),
            _c(COL_EMPLOYEES, "float"),
            _c(COL_INDUSTRY_CODE, "str"),
            _c(COL_INDUSTRY_NAME, "str"),
            _c(COL_BUSINESS_SCOPE, "str"),
            _c(COL_DESCRIPTION, "str"),
            _c(COL_PRODUCTS, "str"),
            _c(COL_LISTED, "bool"),
            _c(COL_FINANCING_ROUND, "str", False, FINANCING_ROUNDS),
            _c(COL_FINANCING_DATE, "date"),
            _c(COL_EXTRA, "str"),
        ),
        key=(COL_ENTERPRISE_ID,),
        extra_columns=True,
    ),
    "presence": TableSchema(
        "presence",
        (
            _c(COL_ENTERPRISE_ID, "str", True),
            _c(COL_NODE_ID, "str", True),
            _c(COL_YEAR, "int", True),
            _c(COL_OUTPUT_VALUE_CNY, "float"),
            _c(COL_TAX_CNY, "float"),
            _c(COL_EMPLOYEES, "float"),
            _c(COL_IS_CHAIN_LEADER, "bool"),
        ),
        key=(COL_ENTERPRISE_ID, COL_NODE_ID, COL_YEAR),
    ),
    "assets": TableSchema(
        "assets",
        (
            _c(COL_ASSET_ID, "str", True),
            _c(COL_ASSET_TYPE, "str", True, ASSET_TYPES),
            _c(COL_NAME, "str", True),
            _c(COL_DESCRIPTION, "str"),
            _c(COL_NODE_ID, "str"),
            _c(COL_OWNER, "str"),
        ),
        key=(COL_ASSET_ID,),
    ),
    "relations": TableSchema(
        "relations",
        (
            _c(COL_RELATION_ID, "str", True),
            _c(COL_SRC_ID, "str", True),
            _c(COL_SRC_TYPE, "str", True, ENTITY_TYPES),
            _c(COL_DST_ID, "str", True),
            _c(COL_DST_TYPE, "str", True, ENTITY_TYPES),
            _c(COL_RELATION_TYPE, "str", True, RELATION_TYPES),
            _c(COL_WEIGHT, "float"),
            _c(COL_DATE, "date", True),
        ),
        key=(COL_RELATION_ID,),
    ),
    "signals": TableSchema(
        "signals",
        (
            _c(COL_SIGNAL_ID, "str", True),
            _c(COL_ENTERPRISE_ID, "str", True),
            _c(COL_SIGNAL_TYPE, "str", True, SIGNAL_TYPES),
            _c(COL_DATE, "date", True),
            _c(COL_AMOUNT_CNY, "float"),
            _c(COL_PROVINCE, "str"),
            _c(COL_CITY, "str"),
            _c(COL_DESCRIPTION, "str"),
        ),
        key=(COL_SIGNAL_ID,),
    ),
    "outcomes": TableSchema(
        "outcomes",
        (
            _c(COL_OUTCOME_ID, "str", True),
            _c(COL_ENTERPRISE_ID, "str", True),
            _c(COL_NODE_ID, "str", True),
            _c(COL_STAGE, "str", True, STAGES),
            _c(COL_DATE, "date", True),
            _c(COL_AMOUNT_CNY, "float"),
            _c(COL_NOTE, "str"),
        ),
        key=(COL_OUTCOME_ID,),
    ),
    "fit_marks": TableSchema(
        "fit_marks",
        (
            _c(COL_NODE_ID, "str", True),
            _c(COL_ENTERPRISE_ID, "str", True),
            _c(COL_FITS, "bool", True),
            _c(COL_DATE, "date"),
            _c(COL_MARKED_BY, "str"),
            _c(COL_NOTE, "str"),
        ),
        key=(COL_NODE_ID, COL_ENTERPRISE_ID),
    ),
}


EVENT_DATE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "enterprises": (COL_FINANCING_DATE,),
    "relations": (COL_DATE,),
    "signals": (COL_DATE,),
    "outcomes": (COL_DATE,),
    "fit_marks": (COL_DATE,),
}
"""The event date columns of each table: they must lie in ``EVENT_DATE_MIN`` … today (``DATE_TIMEZONE``).
Every other date column (``founded``) lies in ``FOUNDED_DATE_MIN`` … today."""


def check_columns(df_columns: list[str] | tuple[str, ...], required: list[str], what: str) -> None:
    """Raise ``ValueError`` naming every missing column of ``what``.

    >>> check_columns(["a"], ["a", "b"], "enterprises")
    Traceback (most recent call last):
    ValueError: enterprises is missing required columns ['b']; got columns ['a'].
    """
    missing = [c for c in required if c not in df_columns]
    if missing:
        raise ValueError(f"{what} is missing required columns {missing}; got columns {list(df_columns)}.")
