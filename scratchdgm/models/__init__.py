"""Latent-variable models: linear-Gaussian (factor analysis, PPCA) and deep (VAE, IWAE)."""
