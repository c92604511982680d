"""Run directories of the refresh: locks, checkpoints, publishing and pruning (``directory``), the
published run as read by the service and the CLI (``published``), and the exports analysts open
(``export``: Excel workbook, per-node CSV, Parquet)."""
