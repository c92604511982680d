"""Training inputs from a workspace: rows training cannot use are set aside, named and never fatal."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from features import schema as S

if TYPE_CHECKING:
    from sqlalchemy import Engine

E1, E2 = "91420100MA4K0000AP", "91420100MA4K0000BT"
NODE = "optical_comm.optical_chip"


def _add_feedback_dated(engine: Engine, on: date, stage: str = "签约") -> str:
    """A feedback row through the store; a store that refuses the date gets it as an older release wrote it."""
    from sqlalchemy import insert

    from recommender import store

    try:
        return str(
            store.add_feedback(engine, enterprise_id=E2, node_id=NODE, stage=stage, author="王", on=on)["outcome_id"]
        )
    except ValueError:
        row = {"outcome_id": "fb-old", "enterprise_id": E2, "node_id": NODE, "stage": stage,
               "date": datetime.combine(on, datetime.min.time()), "author": "王", "created_at": datetime.now(UTC)}  # fmt: skip
        with engine.begin() as conn:
            conn.execute(insert(store.feedback).values(**row))
        return "fb-old"


def test_load_training_inputs_sets_aside_outcomes_dated_9999_from_file_and_feedback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from features.io import write_snapshot
    from features.validate import today_in_zone
    from recommender import store
    from recommender.ranking import jobs
    from recommender.settings import load_settings

    settings = load_settings(workspace=tmp_path / "ws")
    outcomes = pd.DataFrame(
        {
            S.COL_OUTCOME_ID: ["o1", "o2"],
            S.COL_ENTERPRISE_ID: [E1, E1],
            S.COL_NODE_ID: [NODE, NODE],
            S.COL_STAGE: ["接洽", "签约"],
            S.COL_DATE: pd.to_datetime(["2025-01-02", "2025-03-04"]),
        }
    )
    write_snapshot(outcomes, tmp_path / "ws" / "snapshots", "outcomes")
    engine = store.engine_for(settings)
    good_id = _add_feedback_dated(engine, date(2025, 6, 1), stage="考察")
    bad_id = _add_feedback_dated(engine, date(9999, 12, 31))
    monkeypatch.setattr(jobs, "training_candidates", lambda settings, nodes, tables: pd.DataFrame())
    with caplog.at_level("WARNING", logger="recommender.ranking.jobs"):
        inputs = jobs.load_training_inputs(settings)
    used = inputs.tables["outcomes"]
    assert used[S.COL_OUTCOME_ID].tolist() == ["o1", "o2", good_id]
    assert used[S.COL_DATE].max() == pd.Timestamp("2025-06-01")
    rejects = sorted((tmp_path / "ws" / "rejects").glob("training-outcomes-*.csv"))
    assert len(rejects) == 1
    today = today_in_zone().isoformat()
    assert rejects[0].read_text(encoding="utf-8-sig").splitlines() == [
        "file,row,field,value,reason",
        f'feedback,2,date,9999-12-31,"after today ({today}, Asia/Shanghai); set aside from training (outcome {bad_id})"',
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"training sets aside 1 outcome row it cannot use: {bad_id} (date 9999-12-31: after today ({today}, "
        f"Asia/Shanghai)); listed in {rejects[0]}"
    ]
