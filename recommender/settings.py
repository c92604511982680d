"""Root settings: read once at the entry point, then passed down as typed objects.

Priority (highest first): explicit overrides from the CLI (``--workspace``), environment variables
with the ``SANSETU_`` prefix (nested keys with ``__``, e.g. ``SANSETU_RETRIEVAL__TOP_K=300``),
the YAML file (``configs/default.yaml`` or ``--config FILE``), then the defaults below.

Each section model is owned by the part of the engine that uses it; add fields to your own
section only. Errors name the key, what was expected and what came.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from features.chains import Chain, validate_chains
from training.config import TrainingConfig

if TYPE_CHECKING:
    from training.fit import FitModel

# libyaml's safe loader when built in (chains load 10x faster), else the pure-Python one
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PACKAGE_ROOT / "configs" / "default.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestConfig(_Section):
    """Raw-file ingest."""

    column_maps_dir: str = "configs/column_maps"
    max_text_chars: int = Field(default=2000, ge=100)
    traditional_to_simplified: bool = True
    max_xlsx_uncompressed_mb: float = Field(default=200, gt=0)  # an XLSX inflating to more is refused
    max_xlsx_compression_ratio: float = Field(default=100, gt=1)  # a zip member inflating more times is refused


class MapConfig(_Section):
    """Three-colour map rules (documented in docs/colour_map.md)."""

    green_min_enterprises: int = Field(default=5, ge=1)
    green_min_lq: float = Field(default=1.2, gt=0)
    green_requires_leader: bool = True
    red_max_enterprises: int = Field(default=0, ge=0)
    red_max_lq: float = Field(default=0.15, ge=0)
    green_min_output_cny: float = Field(default=0.0, ge=0)  # 0 = no output-value condition
    green_min_growth: float | None = Field(default=None, ge=-1)  # None = no growth condition
    exclude_non_operating: bool = True  # universe for the LQ: operating enterprises only


class RetrievalConfig(_Section):
    """Embedding, index and candidate generation."""

    embedder: str = "e5-small-int8"  # e5-small(-int8|-static) | use-multilingual | tfidf | a local model folder
    top_k_dense: int = Field(default=500, ge=1)
    top_k_lexical: int = Field(default=500, ge=1)
    approximate_index_above: int = Field(default=200_000, ge=1)
    batch_size: int = Field(default=16, ge=1)  # profiles per encoder call; 16 ran int8 e5 ~1.3x faster than 64 here
    exclude_ids: list[str] = Field(default_factory=list)
    signal_window_days: int = Field(default=365, ge=1)
    profile_max_chars: int = Field(default=160, ge=16)  # text cap (features.profiles); encoding cost grows with it
    approximate_index_kind: Literal["hnsw", "ivf"] = "hnsw"  # used above approximate_index_above profiles
    index_max_drift: float = Field(default=0.2, ge=0)  # rebuild an index in full once this share of its rows changed
    # word index (BM25F over jieba words per field, models.bm25) and fusion (recommender.retrieval.fusion)
    top_k_words: int = Field(default=500, ge=1)
    word_field_chars: int = Field(default=1000, ge=16)  # each field is cut to this many characters before segmenting
    bm25_k1: float = Field(default=1.2, gt=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)
    field_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "name": 1.0,
            "industry_name": 1.0,
            "products": 1.0,
            "business_scope": 1.0,
            "description": 1.0,
        }  # fmt: skip
    )
    query_part_weights: dict[str, float] = Field(
        default_factory=lambda: {"name": 1.0, "products": 1.0, "keywords": 1.0, "description": 1.0}
    )
    fusion_weights: dict[str, float] = Field(
        default_factory=lambda: {"dense": 0.53, "words": 2.15, "lexical": 0.33}
    )  # learned on the sample zone from industry codes: benchmarks/fusion_weights.py
    prf_docs: int = Field(default=0, ge=0)  # RM3 feedback documents (0: off)
    prf_terms: int = Field(default=20, ge=1)
    prf_weight: float = Field(default=0.3, ge=0, le=1)
    expansion_terms: int = Field(default=0, ge=0)  # co-occurring words added per node query (0: off)
    expansion_weight: float = Field(default=0.3, ge=0)

    @field_validator("field_weights")
    @classmethod
    def _known_fields(cls, v: dict[str, float]) -> dict[str, float]:
        from features.words import WORD_FIELDS

        unknown = sorted(set(v) - set(WORD_FIELDS))
        if unknown or any(w < 0 for w in v.values()) or not any(w > 0 for w in v.values()):
            raise ValueError(f"field_weights must map some of {list(WORD_FIELDS)} to weights >= 0 (one > 0); got {v}")
        return v

    @field_validator("query_part_weights")
    @classmethod
    def _known_parts(cls, v: dict[str, float]) -> dict[str, float]:
        from features.words import QUERY_PARTS

        unknown = sorted(set(v) - set(QUERY_PARTS))
        if unknown or any(w < 0 for w in v.values()):
            raise ValueError(f"query_part_weights must map some of {list(QUERY_PARTS)} to weights >= 0; got {v}")
        return v

    @field_validator("fusion_weights")
    @classmethod
    def _known_retrievers(cls, v: dict[str, float]) -> dict[str, float]:
        known = ("dense", "words", "lexical")
        unknown = sorted(set(v) - set(known))
        if unknown or any(w < 0 for w in v.values()) or not any(w > 0 for w in v.values()):
            raise ValueError(f"fusion_weights must map some of {list(known)} to weights >= 0 (one > 0); got {v}")
        return v


class PathsConfig(_Section):
    """Approach paths and explanations."""

    max_hops: int = Field(default=3, ge=1, le=5)
    routes_per_target: int = Field(default=3, ge=1)
    recency_half_life_days: float = Field(default=730.0, gt=0)
    recency_floor: float = Field(default=0.2, ge=0, lt=1)  # an old tie keeps this share of its strength
    top_targets: int = Field(default=50, ge=1)
    length_decay: float = Field(default=0.8, gt=0, le=1)  # route score factor per hop beyond the first
    max_intermediate_degree: int = Field(default=5000, ge=1)  # hubs above this are not introducers
    scenario_min_overlap: float = Field(default=0.6, gt=0, le=1)  # product-item bigram containment
    explain_top_reasons: int = Field(default=5, ge=1)
    priority_floor: float = Field(default=0.1, ge=0, le=1)  # feasibility floor of an isolated node
    priority_gap_exponent: float = Field(default=1.0, ge=0)
    priority_feasibility_exponent: float = Field(default=1.0, ge=0)
    relatedness_region: Literal["province", "city"] = "city"


class RankingConfig(_Section):
    """What goes into the published lists (``recommender.ranking.lists``; docs/ranking.md, "Lists")."""

    fit_threshold: float = Field(default=0.5, ge=0, le=1)  # a pair below this fit is never listed
    max_lists_per_firm: int = Field(default=3, ge=1)  # published lists (top_n) one firm may be in
    exclude_terminated_months: int = Field(default=24, ge=0)  # a pair terminated this recently is left out
    fit_model: str = "configs/fit_model.yaml"  # training.fit.FitModel.to_dict output (docs/ranking.md, "Fit")
    fit_refit: bool = False  # refit the fit model on the universe's own candidates (codes as labels) when it can
    fit_refit_min_pairs: int = Field(default=200, ge=1)  # pairs of each code state (agree, disagree) a refit needs
    near_fit_per_node: int = Field(default=10, ge=0)  # best below-threshold outside firms per node to check (待核实)
    near_fit_min: float = Field(
        default=0.05, ge=0, le=1
    )  # ... whose fit is at least this (none at or above the threshold)


class RefreshConfig(_Section):
    """The nightly job."""

    schedule: str = "30 2 * * *"
    retries: int = Field(default=2, ge=0)
    keep_runs: int = Field(default=14, ge=1)
    executor: Literal["local", "dask"] = "local"
    dask_scheduler: str | None = None
    top_n: int = Field(default=50, ge=1)
    retry_delay_s: float = Field(default=300.0, ge=0)  # wait before retry n is n * retry_delay_s
    log_format: Literal["text", "json"] = "text"  # --log-json / SANSETU_LOG_FORMAT=json win


class ServeConfig(_Section):
    """HTTP API and web page."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    database_url: str | None = None  # default: SQLite (WAL) in the workspace
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)  # a web session ends this long after login
    session_idle_minutes: float = Field(default=60.0, gt=0)  # ... or after this long without a request
    timezone: str = "Asia/Shanghai"  # times on pages and in exports are shown in this zone, labelled
    openapi_requires_token: bool = True  # /openapi.json and /docs need a viewer token like the API

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"must be an IANA time zone such as 'Asia/Shanghai'; got {v!r}") from None
        return v


class Settings(BaseSettings):
    """All of sansetu's configuration."""

    model_config = SettingsConfigDict(env_prefix="SANSETU_", env_nested_delimiter="__", extra="forbid")

    workspace: Path = Path("workspace")
    chains_dir: str = "configs/chains"
    random_state: int = 42
    zone_name: str = "武汉东湖新技术开发区（中国光谷）"
    zone_province: str = "湖北省"
    zone_city: str = "武汉市"
    ingest: IngestConfig = IngestConfig()
    map: MapConfig = MapConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    training: TrainingConfig = TrainingConfig()
    paths: PathsConfig = PathsConfig()
    ranking: RankingConfig = RankingConfig()
    refresh: RefreshConfig = RefreshConfig()
    serve: ServeConfig = ServeConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # CLI overrides (init) > environment > YAML; nested keys are merged across sources.
        yaml_file = settings_cls.model_config.get("yaml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file, yaml_file_encoding="utf-8"))
        return tuple(sources)

    @field_validator("workspace")
    @classmethod
    def _absolute_workspace(cls, v: Path) -> Path:
        # absolute once, here: later code may run in threads, subprocesses or another cwd
        return Path(os.path.abspath(os.path.expanduser(v)))

    def resolve(self, path: str | Path) -> Path:
        """A config-relative path (``configs/...``) resolved against the package root."""
        p = Path(path)
        return p if p.is_absolute() else PACKAGE_ROOT / p

    def ingest_options(self) -> dict[str, Any]:
        """The keyword arguments of ``features.io.ingest_file`` that the ``ingest`` section sets
        (column maps folder, traditional → simplified, text length, XLSX size limits): every caller
        (``sansetu ingest``, the refresh, the demo) ingests under the same rules."""
        from features.io import MB, ReadLimits

        cfg = self.ingest
        limits = ReadLimits(
            max_xlsx_uncompressed_bytes=int(cfg.max_xlsx_uncompressed_mb * MB),
            max_xlsx_ratio=cfg.max_xlsx_compression_ratio,
        )
        return {
            "maps_dir": self.resolve(cfg.column_maps_dir),
            "to_simplified": cfg.traditional_to_simplified,
            "max_text_chars": cfg.max_text_chars,
            "limits": limits,
        }


class ConfigError(ValueError):
    """A configuration value is wrong; the message names key, expectation and value."""


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"Invalid configuration in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        got = e.get("input")
        lines.append(f"  {key}: {e['msg']} (got {got!r})")
    return "\n".join(lines)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; an error names the file."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)  # a safe loader
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level; got {type(data).__name__}")
    return data


def load_settings(config_file: Path | None = None, workspace: Path | None = None) -> Settings:
    """Build :class:`Settings` from YAML, the environment and CLI overrides, checked once.

    Args:
        config_file: YAML file; default ``configs/default.yaml`` of the package.
        workspace: ``--workspace`` override; beats ``SANSETU_WORKSPACE`` and the YAML.
    """
    path = config_file or DEFAULT_CONFIG
    read_yaml(path)  # a clear error for a missing or malformed file before pydantic sees it
    bound = type("Settings", (Settings,), {"model_config": {**Settings.model_config, "yaml_file": str(path)}})
    overrides: dict[str, Any] = {} if workspace is None else {"workspace": workspace}
    try:
        return bound(**overrides)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, str(path))) from None


def load_fit_model(settings: Settings) -> FitModel:
    """The fit model of ``ranking.fit_model`` (a YAML of ``FitModel.to_dict``); an error names the file."""
    from training.fit import FitModel

    path = settings.resolve(settings.ranking.fit_model)
    try:
        return FitModel.from_dict(read_yaml(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"ranking.fit_model {path} is not a fit model (training.fit.FitModel.to_dict): {exc}"
        ) from None


def load_chains(settings: Settings) -> list[Chain]:
    """Read and validate every ``*.yaml`` in the chains directory, in file-name order."""
    folder = settings.resolve(settings.chains_dir)
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ConfigError(f"no chain files (*.yaml) in {folder}")
    raw = []
    for f in files:
        raw.append(read_yaml(f))
    try:
        return validate_chains(raw)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, str(folder))) from None
    except ValueError as exc:
        raise ConfigError(f"chains in {folder}: {exc}") from None
