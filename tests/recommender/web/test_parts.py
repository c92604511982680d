"""The web app's parts on their own: the list filters, the feedback stages, the page login."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from fastapi import HTTPException
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from features import schema as S
from recommender.settings import load_settings
from recommender.web.app import create_app
from recommender.web.filters import ListFilters
from recommender.web.routers.pages import chains, enterprises, targets
from recommender.web.schemas import FeedbackIn


def test_feedback_accepts_every_stage_of_the_schema_but_the_lead() -> None:
    stages = get_args(FeedbackIn.model_fields["stage"].annotation)
    assert stages == ("接洽", "考察", "洽谈", "签约", "落地", "终止")
    assert set(stages) == set(S.STAGES) - {"线索"}


def test_list_filters_read_the_page_form_leniently() -> None:
    f = ListFilters.from_page(province="  廣東 ", size="巨型", listed="1", has_signals="yes", theme="资本招商")
    assert (f.province, f.size, f.listed, f.has_signals, f.theme) == ("廣東", None, True, None, "资本招商")
    assert f.form_values() == {"province": "廣東", "size": "", "listed": "1", "has_signals": "", "theme": "资本招商"}
    assert f.api_params() == {"province": "廣東", "listed": "true", "theme": "资本招商"}
    assert ListFilters.from_page(province="x" * 60).province == "x" * 50
    assert ListFilters.from_page() == ListFilters()


def test_list_filters_checked_names_the_unknown_value() -> None:
    with pytest.raises(HTTPException) as bad_size:
        ListFilters(size="巨型", theme="随便").checked()
    assert (bad_size.value.status_code, bad_size.value.detail) == (
        422,
        [{"field": "query.size", "problem": "must be one of ['小型', '中型', '大型']", "got": "巨型"}],
    )
    with pytest.raises(HTTPException) as bad_theme:
        ListFilters(theme="随便").checked()
    assert bad_theme.value.detail[0]["field"] == "query.theme"
    assert ListFilters(province="", listed=False).checked() == ListFilters(listed=False)


def test_every_page_sends_a_visitor_without_login_to_the_login_page(
    published_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANSETU_RETRIEVAL__EMBEDDER", "tfidf")
    app = create_app(load_settings(workspace=published_workspace))
    client = TestClient(app)
    pages = [
        (method, re.sub(r"\{[^}]+\}", "x", route.path))
        for area in (chains, targets, enterprises)  # every page area but login / logout
        for route in area.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    ]
    assert len(pages) == 10
    for method, path in pages:
        data = {"node_id": "x", "stage": "接洽"} if method == "POST" else None
        r = client.request(method, path, data=data, follow_redirects=False)
        assert (r.status_code, r.headers.get("location")) == (303, "/login"), (method, path)
