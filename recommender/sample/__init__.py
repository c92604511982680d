"""The deterministic sample zone: the generator of a synthetic zone with a documented hidden
process (``generate``), its vocabulary (``vocab``), the raw files' headers taken from the built-in
column maps (``columns``) and the writer of the raw files a user would import (``write``)."""
