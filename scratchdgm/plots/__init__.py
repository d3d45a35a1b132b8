"""Matplotlib figures: :mod:`scratchdgm.plots.linear` (FA / PPCA) and
:mod:`scratchdgm.plots.deep` (VAE / IWAE). Every function writes a PNG and returns its path."""
