"""Runnable reproductions of lecture claims, and the pieces behind ``scratchdgm demo``."""
