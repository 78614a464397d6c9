"""Latent-space tools: interpolation, truncation and style mixing, attribute scorers and editors."""
