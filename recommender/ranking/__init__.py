"""Ranking: scoring candidates with the champion model or the heuristic (``scoring``), and the
training / evaluation jobs from a workspace that the CLI, the demo and the web service share
(``jobs``)."""
