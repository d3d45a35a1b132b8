"""Fixtures shared by the tests in this folder (Hypothesis profiles live in the root conftest.py)."""
