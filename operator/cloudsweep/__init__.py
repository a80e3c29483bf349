"""CloudSweep: find, price and safely remove AWS waste.

The engine (scanning, detectors, cleanup) is called by two thin front doors: the kopf handlers and
the ``cloudsweep`` command line.
"""

__version__ = "0.1.0"
