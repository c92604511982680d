"""The sample zone's outcome processes as configuration: ``configs/processes/<name>.yaml``, checked once.

A process is one synthetic world (docs/sample.md, "Outcome processes"): the hidden signing propensity
(``propensity``: a fixed set of terms every world has, plus ``terms`` — products of factors, which
express interactions, thresholds and where a signal happened — and a per-firm ``latent`` factor that no
table shows), the analysts' approach policy (``policy``) and how many firms are relevant to each node
(``universe``). :func:`load_process` reads a bundled process by name or any YAML file by path;
:func:`parse_process` validates a mapping. Unknown keys are errors; an error names the file, the key,
what was expected and what came.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Final, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recommender.sample.catalog import PROCESSES_DIR, available_processes
from recommender.settings import ConfigError, read_yaml

SignalName = Literal["financing", "new_branch", "land", "hiring", "expansion"]
"""Signal types by their English names, in the order of ``features.schema.SIGNAL_TYPES``
(融资, 新设分支机构, 购地, 招聘, 扩产)."""
SIGNAL_NAMES: Final[tuple[str, ...]] = get_args(SignalName)
TieName = Literal["leader_supplier", "local_supplier", "fund_portfolio", "alumni", "lab", "local_capital"]
TIE_NAMES: Final[tuple[str, ...]] = get_args(TieName)
FitName = Literal["true_node", "secondary_node", "adjacent_node", "same_chain", "other"]
FIT_NAMES: Final[tuple[str, ...]] = get_args(FitName)
RegionName = Literal["hubei", "neighbour", "far"]
"""The zone's province, a neighbouring province, any other."""
REGION_NAMES: Final[tuple[str, ...]] = get_args(RegionName)
AttributeName = Literal["log10_capital", "age_years", "listed", "operating", "latent"]
STAGES: Final = ("接洽", "考察", "洽谈", "签约", "落地")
"""Progress stages past 线索, in order; the keys of ``propensity.stage_thresholds``."""
_NAME: Final = re.compile(r"^[a-z][a-z0-9_-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FitWeights(_Model):
    """A value per level of fit between a firm and a node (true, secondary, adjacent, same chain, other)."""

    true_node: float
    secondary_node: float
    adjacent_node: float
    same_chain: float
    other: float

    def values(self) -> list[float]:
        """The five values in the order of :data:`FIT_NAMES`."""
        return [getattr(self, name) for name in FIT_NAMES]


class SizeTerm(_Model):
    """``linear·z + quadratic·z²`` with ``z = log10(capital CNY) − centre_log10_cny``."""

    centre_log10_cny: float
    linear: float
    quadratic: float


class FinancingTerm(_Model):
    """A financing signal in the last 365 days, for firms younger than 5 years and the others."""

    young_lt_5y: float
    older: float


class TiesTerm(_Model):
    """``scale·(1 − exp(−S))``, S = the weights of the zone ties active before the day."""

    scale: float
    leader_supplier: float
    local_supplier: float
    fund_portfolio: float
    alumni: float
    lab: float
    local_capital: float


class GeographyTerm(_Model):
    """By registered province; × ``leader_tie_factor`` with a leader-supplier tie; at least
    ``hubei_branch_floor`` once the firm opened a branch in the zone's province."""

    hubei: float
    neighbour: float
    far: float
    leader_tie_factor: float
    hubei_branch_floor: float


class LatentFactor(_Model):
    """A firm-level factor nobody observes: z ~ Normal(0, 1) per firm, adding ``sd·z`` to the logit."""

    sd: float = Field(ge=0)
    meaning: str = ""


class Factor(_Model):
    """One factor of a term; exactly one of ``signal``, ``attribute``, ``tie``, ``geography``, ``fit``.

    * ``signal`` (+ ``window_days``, ``where``): 1 if the firm had one of these signals in
      ``[t − window_days, t)`` (anywhere, only in the zone's province, or only outside it), else 0.
    * ``attribute``: the value on day t (``log10_capital``, ``age_years``, ``listed`` 0/1, ``operating``
      0/1, ``latent`` the unobserved z) minus ``centre``; with ``above`` / ``below`` instead the
      indicator ``above ≤ value < below``.
    * ``tie``: 1 if one of these zone ties is active before t.
    * ``geography``: 1 if the registered province is one of these regions.
    * ``fit``: 1 if the firm's fit to the node is one of these levels.
    """

    signal: list[SignalName] | None = None
    window_days: int | None = Field(default=None, ge=1)
    where: Literal["anywhere", "zone_province", "outside_zone_province"] = "anywhere"
    attribute: AttributeName | None = None
    centre: float = 0.0
    above: float | None = None
    below: float | None = None
    tie: list[TieName] | None = None
    geography: list[RegionName] | None = None
    fit: list[FitName] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Factor:
        kinds = [k for k in ("signal", "attribute", "tie", "geography", "fit") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a factor needs exactly one of signal, attribute, tie, geography, fit; got {kinds}")
        if (self.signal is not None) != (self.window_days is not None):
            raise ValueError("window_days goes with signal, and a signal needs window_days")
        if self.signal is None and self.where != "anywhere":
            raise ValueError(f"where goes only with signal; got where={self.where!r} for {kinds[0]}")
        set_attr = [k for k in ("above", "below") if getattr(self, k) is not None] + ["centre"] * (self.centre != 0)
        if self.attribute is None and set_attr:
            raise ValueError(f"{set_attr} go only with attribute; got them for {kinds[0]}")
        if self.above is not None and self.below is not None and not self.above < self.below:
            raise ValueError(f"above must be less than below; got above={self.above}, below={self.below}")
        if self.centre != 0 and (self.above is not None or self.below is not None):
            raise ValueError("centre is for a numeric attribute; an attribute with above/below is an indicator")
        return self


class Term(_Model):
    """``weight × factor₁ × factor₂ × …`` added to the logit (an interaction when it has several factors)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    weight: float
    factors: list[Factor] = Field(min_length=1)


class Propensity(_Model):
    """The hidden logit of P(签约 | approached on day t) (docs/sample.md, section 6)."""

    intercept: float
    fit: FitWeights
    size: SizeTerm
    financing_365d: FinancingTerm
    expansion_365d: float  # 扩产 or 购地
    new_branch_365d: float
    hiring_180d: float
    ties: TiesTerm
    geography: GeographyTerm
    age_lt_2y: float
    listed: float
    not_operating: float
    latent: LatentFactor
    terms: list[Term] = Field(default_factory=list)
    outcome_noise_scale: float = Field(gt=0)
    stage_thresholds: dict[str, float]

    @field_validator("stage_thresholds")
    @classmethod
    def _stages_in_order(cls, v: dict[str, float]) -> dict[str, float]:
        if sorted(v) != sorted(STAGES):
            raise ValueError(f"must have exactly the keys {list(STAGES)}; got {list(v)}")
        v = {stage: v[stage] for stage in STAGES}  # in stage order, however the file lists them
        values = list(v.values())
        if any(b <= a for a, b in zip(values, values[1:], strict=False)):
            raise ValueError(f"must increase from stage to stage; got {values}")
        return v

    @field_validator("terms")
    @classmethod
    def _unique_names(cls, v: list[Term]) -> list[Term]:
        names = [t.name for t in v]
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            raise ValueError(f"term names must be unique; got {doubles} more than once")
        return v

    @property
    def signing_threshold(self) -> float:
        """The latent value an approach must exceed to reach 签约."""
        return self.stage_thresholds["签约"]


class TextFit(_Model):
    """The analysts' reading of a firm's text fit to the node, by true level; × ``vague_description_factor``
    for firms whose description says nothing specific."""

    true_node: float
    secondary_node: float
    adjacent_node: float
    same_chain: float
    other: float
    vague_description_factor: float = Field(ge=0)

    def values(self) -> list[float]:
        return [getattr(self, name) for name in FIT_NAMES]


class Pool(_Model):
    """Candidates per node: firms of its chain (at most ``chain_max``), ``large`` of the firms above the
    ``large_quantile`` of capital and ``random`` others."""

    chain_max: int = Field(ge=1)
    large: int = Field(ge=0)
    large_quantile: float = Field(ge=0, lt=1)
    random: int = Field(ge=0)


class SignalChasing(_Model):
    """Policy bonus for firms with one of ``signals`` in the ``window_days`` before the quarter."""

    weight: float
    window_days: int = Field(ge=1)
    signals: list[SignalName]


class Policy(_Model):
    """The analysts' approach policy (docs/sample.md, section 5): each quarter, Poisson(λ_v) firms per
    red/blue node, the top of ``score + noise_scale·Gumbel`` among the pool."""

    bias: str
    approaches_per_target_node_per_quarter: float = Field(gt=0)
    red_factor: float = Field(gt=0)
    text_fit_weight: float
    fame_weight: float
    text_fit: TextFit
    pool: Pool
    noise_scale: float = Field(gt=0)
    signal_chasing: SignalChasing
    tie_weight: float  # any zone tie active before the quarter (warm leads)
    zone_province_weight: float  # registered in the zone's province


class Universe(_Model):
    """How many firms are relevant to each node: chain firms are ``1 − distractor_share`` of the universe,
    at least ``min_per_node`` per node, the rest spread by a per-node popularity ~ Gamma(popularity_shape, 1)."""

    distractor_share: float = Field(ge=0, lt=1)
    min_per_node: int = Field(ge=1)
    popularity_shape: float = Field(gt=0)
    secondary_share: float = Field(ge=0, le=1)
    vague_share: float = Field(ge=0, le=1)


class ProcessConfig(_Model):
    """One outcome process of the sample zone (a file of ``configs/processes``)."""

    name: str
    description: str
    propensity: Propensity
    policy: Policy
    universe: Universe

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"must be lowercase letters, digits, '_' or '-', starting with a letter; got {v!r}")
        return v

    def sha256(self) -> str:
        """A fingerprint of the validated configuration (canonical JSON, so comments and layout do not count)."""
        text = json.dumps(self.model_dump(mode="json"), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_process(data: dict[str, Any], source: str) -> ProcessConfig:
    """Validate a process mapping; ``source`` (a file name) goes into the error.

    Raises:
        ConfigError: one line per problem: key, what was expected, what came.
    """
    try:
        return ProcessConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_process(process: str | Path) -> ProcessConfig:
    """A bundled process by name (``configs/processes/<name>.yaml``) or any process file by path.

    Raises:
        ConfigError: no such process (the message lists the bundled ones), a file that is not valid YAML,
            a key that is unknown, missing or wrong, or a ``name`` other than the file's name.
    """
    path = Path(process)
    if path.suffix not in {".yaml", ".yml"}:
        path = PROCESSES_DIR / f"{process}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"no sample process {str(process)!r}; the bundled ones are {available_processes()} "
                f"(or give the path of a .yaml file)"
            )
    cfg = parse_process(read_yaml(path), str(path))
    if cfg.name != path.stem:
        raise ConfigError(
            f"Invalid sample process in {path}:\n  name: must be the file's name {path.stem!r} (got {cfg.name!r})"
        )
    return cfg


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"Invalid sample process in {source}:"]
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        key = ".".join(loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key; expected one of {_keys_at(loc[:-1])} (got {e['input']!r})")
        elif e["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        else:
            lines.append(f"  {key}: {e['msg'].removeprefix('Value error, ')} (got {e['input']!r})")
    return "\n".join(lines)


def _keys_at(loc: list[str]) -> list[str]:
    """The keys the model at ``loc`` (a path into :class:`ProcessConfig`) accepts."""
    model: Any = ProcessConfig
    for part in loc:
        if part.isdigit():
            continue
        annotation = model.model_fields[part].annotation
        while get_origin(annotation) is not None:  # list[Term], Term | None
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        model = annotation
    return list(model.model_fields)
