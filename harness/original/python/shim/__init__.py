"""Shims that let the original v1.0.4 run on Django 3.2 without touching its logic (harness/original/README.md)."""
