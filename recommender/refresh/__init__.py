"""The nightly refresh: a crash-safe pipeline of steps that ingests, maps, embeds, indexes,
retrieves, scores, explains and exports, then publishes atomically; its schedule, logs and
executors (local or Dask)."""
