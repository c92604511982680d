"""One router per area of the service: the API's (meta, map, targets, enterprises, feedback, runs,
models, admin) and the web pages' (``routers.pages``)."""
