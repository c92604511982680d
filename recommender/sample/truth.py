"""The sample's truth: P(签约 | approached on day t) for any (node, enterprise, date), as the outcomes are drawn.

Each approach of the generated history draws ``L = logit + s·Logistic(0, 1)`` once and reaches 签约 when
``L`` exceeds the process's 签约 threshold θ (docs/sample.md, section 7), so

    P(签约 | approached on day t) = sigmoid((logit(e, v, t) − θ) / s)

with the logit of the process (:mod:`recommender.sample.process`), the unobserved per-firm factor
included and everything measured strictly before t. :class:`World` holds the hidden context the logit
reads (integer indices, days since 1970-01-01); :class:`SigningTruth` adds the process and answers in
the schema's string ids. ``truth.npz`` next to ``oracle.parquet`` keeps it (:func:`truth_bytes`,
:func:`load_truth`): a zip of ``.npy`` arrays, no pickles, byte for byte the same per sample.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from recommender.sample.process import (
    FIT_NAMES,
    REGION_NAMES,
    SIGNAL_NAMES,
    TIE_NAMES,
    Factor,
    ProcessConfig,
    Propensity,
)

TRUTH_FILE: Final = "truth.npz"
TRUTH_FORMAT: Final = "1"
_KEY: Final = 1 << 20  # days per enterprise in the sorted signal keys (ent * _KEY + day)
_NEVER: Final = np.iinfo(np.int64).max


@dataclass(frozen=True)
class World:
    """The hidden context of the signing process, per enterprise index (rows of the generated universe).

    Arrays: ``ids`` (n,) the enterprises' credit codes; ``kind`` (n,) the chain node index or a distractor
    kind ≥ n_nodes; ``second`` (n,) a secondary node or -1; ``node_ids`` (k,), ``chain_of`` (k,) and
    ``adjacent`` (k, k) of the chain nodes; ``capital_cny``, ``founded`` (day), ``listed``,
    ``operating``, ``region`` (0 zone province, 1 neighbour, 2 far), ``latent`` (the unobserved z);
    ``ties``: first day of each zone tie (``int64`` max = never); the signals as ``sig_ent``,
    ``sig_kind`` (index of ``SIGNAL_NAMES``), ``sig_day`` and ``sig_zone`` (in the zone's province).
    """

    ids: np.ndarray
    kind: np.ndarray
    second: np.ndarray
    node_ids: np.ndarray
    chain_of: np.ndarray
    adjacent: np.ndarray
    capital_cny: np.ndarray
    founded: np.ndarray
    listed: np.ndarray
    operating: np.ndarray
    region: np.ndarray
    latent: np.ndarray
    ties: dict[str, np.ndarray]
    sig_ent: np.ndarray
    sig_kind: np.ndarray
    sig_day: np.ndarray
    sig_zone: np.ndarray
    _cache: dict[Any, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    def signal_keys(self, signals: tuple[str, ...], where: str = "anywhere") -> np.ndarray:
        """Sorted ``ent * _KEY + day`` of the signals of these types (``where``: anywhere, zone_province,
        outside_zone_province), built once per combination."""
        key = ("signals", tuple(sorted(signals)), where)
        if key not in self._cache:
            mask = np.isin(self.sig_kind, [SIGNAL_NAMES.index(s) for s in signals])
            if where == "zone_province":
                mask &= self.sig_zone
            elif where == "outside_zone_province":
                mask &= ~self.sig_zone
            self._cache[key] = np.sort(self.sig_ent[mask] * _KEY + self.sig_day[mask])
        return self._cache[key]

    def zone_branch_day(self) -> np.ndarray:
        """First day of a new branch in the zone's province per enterprise (``int64`` max = never)."""
        if "zone_branch" not in self._cache:
            m = (self.sig_kind == SIGNAL_NAMES.index("new_branch")) & self.sig_zone
            out = np.full(len(self.kind), _NEVER, dtype=np.int64)
            np.minimum.at(out, self.sig_ent[m], self.sig_day[m])
            self._cache["zone_branch"] = out
        return self._cache["zone_branch"]


def recent(keys: np.ndarray, ent: np.ndarray, t: np.ndarray | int, window: int) -> np.ndarray:
    """Whether ``ent`` has an event of ``keys`` (:meth:`World.signal_keys`) in ``[t − window, t)``."""
    hi = np.searchsorted(keys, ent * _KEY + t, side="left")
    lo = np.searchsorted(keys, ent * _KEY + t - window, side="left")
    return hi > lo


def fit_level(world: World, ent: np.ndarray, node: np.ndarray) -> np.ndarray:
    """0 true node, 1 secondary node, 2 adjacent node, 3 same chain, 4 other (the order of ``FIT_NAMES``)."""
    k = world.n_nodes
    kind, second = world.kind[ent], world.second[ent]
    is_chain = kind < k
    kc, sc = np.minimum(kind, k - 1), np.maximum(second, 0)
    adjacent = (is_chain & world.adjacent[node, kc]) | ((second >= 0) & world.adjacent[node, sc])
    same = (is_chain & (world.chain_of[kc] == world.chain_of[node])) | (
        (second >= 0) & (world.chain_of[sc] == world.chain_of[node])
    )
    return np.select([kind == node, second == node, adjacent, same], [0, 1, 2, 3], default=4)


def _base_logit(world: World, h: Propensity, ent: np.ndarray, node: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The terms every process has (docs/sample.md, section 6), in the order the default process adds them."""
    fit = np.asarray(h.fit.values())[fit_level(world, ent, node)]
    z = np.log10(world.capital_cny[ent]) - h.size.centre_log10_cny
    size = h.size.linear * z + h.size.quadratic * z**2
    age = (t - world.founded[ent]) / 365.25
    fin = recent(world.signal_keys(("financing",)), ent, t, 365)
    momentum = (
        fin * np.where(age < 5, h.financing_365d.young_lt_5y, h.financing_365d.older)
        + h.expansion_365d * recent(world.signal_keys(("expansion", "land")), ent, t, 365)
        + h.new_branch_365d * recent(world.signal_keys(("new_branch",)), ent, t, 365)
        + h.hiring_180d * recent(world.signal_keys(("hiring",)), ent, t, 180)
    )
    active = {name: world.ties[name][ent] < t for name in TIE_NAMES}
    tie_sum = sum(getattr(h.ties, name) * active[name] for name in TIE_NAMES)
    ties = h.ties.scale * (1 - np.exp(-tie_sum))
    g = h.geography
    geo = np.asarray([g.hubei, g.neighbour, g.far])[world.region[ent]]
    geo = np.where(active["leader_supplier"], geo * g.leader_tie_factor, geo)
    geo = np.where(world.zone_branch_day()[ent] < t, np.maximum(geo, g.hubei_branch_floor), geo)
    return (
        h.intercept
        + fit
        + size
        + momentum
        + ties
        + geo
        + h.age_lt_2y * (age < 2)
        + h.listed * world.listed[ent]
        + h.not_operating * ~world.operating[ent]
    )


def _attribute(world: World, name: str, ent: np.ndarray, t: np.ndarray) -> np.ndarray:
    if name == "log10_capital":
        return np.log10(world.capital_cny[ent])
    if name == "age_years":
        return (t - world.founded[ent]) / 365.25
    if name == "latent":
        return world.latent[ent]
    return getattr(world, name)[ent].astype(float)  # listed, operating


def _factor(world: World, f: Factor, ent: np.ndarray, node: np.ndarray, t: np.ndarray) -> np.ndarray:
    """One factor of a term (:class:`recommender.sample.process.Factor`) per pair, as floats."""
    if f.signal is not None:
        assert f.window_days is not None  # the schema ties them together
        return recent(world.signal_keys(tuple(f.signal), f.where), ent, t, f.window_days).astype(float)
    if f.attribute is not None:
        value = _attribute(world, f.attribute, ent, t)
        if f.above is None and f.below is None:
            return value - f.centre
        lo = -np.inf if f.above is None else f.above
        hi = np.inf if f.below is None else f.below
        return ((value >= lo) & (value < hi)).astype(float)
    if f.tie is not None:
        return np.logical_or.reduce([world.ties[name][ent] < t for name in f.tie]).astype(float)
    if f.geography is not None:
        return np.isin(world.region[ent], [REGION_NAMES.index(r) for r in f.geography]).astype(float)
    assert f.fit is not None
    return np.isin(fit_level(world, ent, node), [FIT_NAMES.index(x) for x in f.fit]).astype(float)


def logit(world: World, h: Propensity, ent: np.ndarray, node: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The hidden logit of (enterprise index, node index) approached on day ``t``, shapes (m,) -> (m,)."""
    out = _base_logit(world, h, ent, node, t)
    for term in h.terms:
        value = np.full(len(ent), term.weight)
        for f in term.factors:
            value = value * _factor(world, f, ent, node, t)
        out = out + value
    if h.latent.sd > 0:
        out = out + h.latent.sd * world.latent[ent]
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class SigningTruth:
    """The true P(签约 | approached on a day) of one generated sample, for any node, enterprise and date."""

    world: World
    process: ProcessConfig
    as_of: date
    _index: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def probability(self, ent: np.ndarray, node: np.ndarray, t: np.ndarray) -> np.ndarray:
        """By integer indices and days (the generator's own lookups); shapes (m,) -> (m,)."""
        h = self.process.propensity
        return sigmoid((logit(self.world, h, ent, node, t) - h.signing_threshold) / h.outcome_noise_scale)

    def signing_probability(self, node_ids: Any, enterprise_ids: Any, dates: Any) -> np.ndarray:
        """P(签约 | the enterprise is approached for the node on the date), pure and vectorised.

        Args:
            node_ids: chain node ids (``node_id``), shape (m,) or one for all.
            enterprise_ids: 统一社会信用代码 (``enterprise_id``) as the sample's tables write them, (m,) or one.
            dates: the approach days (``YYYY-MM-DD`` strings, dates, datetime64), (m,) or one; records
                dated on or after a day do not count for it, and none exists on or after ``as_of``.

        Returns:
            float64 array (m,) in (0, 1).

        Raises:
            ValueError: an unknown node or enterprise id (the first few are named), a missing date, or
                lengths that differ and are not 1.
        """
        node = self._lookup("node", self.world.node_ids, node_ids)
        ent = self._lookup("enterprise", self.world.ids, enterprise_ids)
        t = _days(dates)
        if len({len(node), len(ent), len(t)} - {1}) > 1:
            raise ValueError(
                f"node_ids ({len(node)}), enterprise_ids ({len(ent)}) and dates ({len(t)}) must have the same "
                "length, or length 1"
            )
        node, ent, t = np.broadcast_arrays(node, ent, t)
        return self.probability(ent, node, t)

    def _lookup(self, what: str, ids: np.ndarray, query: Any) -> np.ndarray:
        if what not in self._index:
            ids = np.asarray(ids, dtype=str)
            order = np.argsort(ids, kind="stable")
            self._index[what] = (order, ids[order])
        order, sorted_ids = self._index[what]
        q = np.atleast_1d(np.asarray(query, dtype=str))
        pos = np.minimum(np.searchsorted(sorted_ids, q), len(sorted_ids) - 1)
        found = sorted_ids[pos] == q
        if not found.all():
            unknown = list(dict.fromkeys(q[~found].tolist()))
            raise ValueError(
                f"unknown {what} ids (not in this sample): {unknown[:5]}{' …' if len(unknown) > 5 else ''}"
            )
        return np.asarray(order[pos], dtype=np.int64)


def _days(dates: Any) -> np.ndarray:
    values = np.atleast_1d(np.asarray(dates, dtype=object) if not isinstance(dates, np.ndarray) else dates)
    stamps = pd.to_datetime(pd.Series(values.ravel()), errors="coerce")
    if stamps.isna().any():
        bad = values.ravel()[stamps.isna().to_numpy()][:5].tolist()
        raise ValueError(f"dates must be dates (YYYY-MM-DD); got {bad}")
    return stamps.to_numpy().astype("datetime64[D]").astype(np.int64)


# ---------------------------------------------------------------------------------------------- truth.npz
_ARRAYS: Final = ("ids", "kind", "second", "node_ids", "chain_of", "adjacent", "capital_cny", "founded", "listed",
                  "operating", "region", "latent", "sig_ent", "sig_kind", "sig_day", "sig_zone")  # fmt: skip


def truth_bytes(truth: SigningTruth) -> bytes:
    """``truth.npz``: the world's arrays, the ties and a ``meta`` JSON (process, as-of), as ``.npy`` members of
    a zip whose entry times are the as-of date (the same bytes for the same sample)."""
    w = truth.world
    arrays = {name: np.asarray(getattr(w, name)) for name in _ARRAYS}
    arrays["ids"] = np.asarray(w.ids, dtype=str)
    arrays["node_ids"] = np.asarray(w.node_ids, dtype=str)
    arrays.update({f"tie_{name}": w.ties[name] for name in TIE_NAMES})
    meta = {
        "format": TRUTH_FORMAT,
        "as_of": truth.as_of.isoformat(),
        "process": truth.process.model_dump(mode="json"),
        "process_sha256": truth.process.sha256(),
    }
    arrays["meta"] = np.asarray([json.dumps(meta, ensure_ascii=False, sort_keys=True)])  # shape (1,)
    stamp = datetime(truth.as_of.year, truth.as_of.month, truth.as_of.day).timetuple()[:6]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=stamp)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16
            z.writestr(entry, buf.getvalue())
    return out.getvalue()


def load_truth(path: str | Path) -> SigningTruth:
    """The :class:`SigningTruth` of a written sample: its folder (``truth.npz`` inside) or the file.

    Raises:
        FileNotFoundError: no truth file there (samples written before it existed have none).
        ValueError: a file of another format version.
    """
    path = Path(path)
    file = path / TRUTH_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no sample truth file {file} (sansetu sample writes it next to oracle.parquet)")
    with np.load(file, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays.pop("meta")[0]))
    if meta.get("format") != TRUTH_FORMAT:
        raise ValueError(f"{file}: truth format {meta.get('format')!r}; this version reads {TRUTH_FORMAT!r}")
    ties = {name: arrays.pop(f"tie_{name}") for name in TIE_NAMES}
    world = World(**{name: arrays[name] for name in _ARRAYS}, ties=ties)
    process = ProcessConfig.model_validate(meta["process"])
    return SigningTruth(world, process, date.fromisoformat(meta["as_of"]))
