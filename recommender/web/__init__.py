"""The HTTP API and the analysts' web page (FastAPI, server-rendered Chinese pages): routers per area,
authentication as dependencies, state and caches, templates and static files."""
