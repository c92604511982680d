"""The nightly refresh: a crash-safe pipeline of steps that ingests, maps, embeds, indexes,
retrieves, scores, explains and exports, then publishes atomically; its schedule, logs and
executors (local or Dask).

``pipeline`` runs the steps (checkpoints, lock, publishing, manifest); ``context`` is what a step
sees and returns; ``steps`` holds the production steps; ``schedule`` maps a refresh to an exit code
and runs it on the cron schedule with retries; ``logs`` configures text or JSON-lines logs;
``executor`` maps partitions locally or on Dask."""
