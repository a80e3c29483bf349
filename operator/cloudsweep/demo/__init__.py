"""Seed data for the demo: sample waste in a local emulated AWS, one module per group of types."""
