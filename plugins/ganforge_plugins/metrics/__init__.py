"""Sample-quality metrics (FID, KID, Inception Score, precision/recall) and the feature extractors they use."""
