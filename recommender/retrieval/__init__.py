"""Retrieval: the profile indexes of the enterprise universe, built and updated incrementally
(``index``, with ``load_retrieval``), the candidates of every red and blue node and the day-one
``heuristic_score`` (``candidates``), and free-text / one-node search (``search``)."""
