"""The analysts' web pages (server-rendered Chinese HTML, not in the OpenAPI schema), one router per
area, behind the page login (``recommender.web.deps.PageUser``) except the login pages themselves."""

from fastapi import APIRouter

from recommender.web.routers.pages import chains, enterprises, login, targets

router = APIRouter(include_in_schema=False)
for _area in (login, chains, targets, enterprises):
    router.include_router(_area.router)
