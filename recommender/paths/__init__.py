"""Approach paths (招商路径) and reasons: the relation graph of the zone (``graph``), the route search
(``routes``), how routes and hops are worded (``wording``), the reasons of a pick (``reasons``) and the
published targets of every node (``targets``)."""
