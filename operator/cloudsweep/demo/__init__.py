"""Seed data for the demo, the benchmark and the tests: sample waste in a local emulated AWS.

Not part of the engine and not a door to AWS (that is :mod:`cloudsweep.aws`): the command line's
``scan --demo``, ``python -m bench scan`` and the tests start a moto server and seed it through
:mod:`cloudsweep.demo.world`. One module per group of resource types holds that group's seeds.
"""
