"""A third-party ganforge procedure: the relativistic average GAN."""
