"""``python -m recommender.cli`` runs the ``sansetu`` command line."""

from recommender.cli.main import main

main()
