"""The three-colour map (招商三色图): node colours with their reasons (``colours``), gap priority
(``priority``), the stored history of maps and the diff against the previous one (``history``), and the
chain pictures (``render``, SVG/HTML)."""
