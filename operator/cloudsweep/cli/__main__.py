"""``python -m cloudsweep.cli``: the same as the ``cloudsweep`` console script."""

from cloudsweep.cli import main

main()
