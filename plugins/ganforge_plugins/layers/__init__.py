"""Network building blocks as registered layers: normalisations, PGGAN and StyleGAN pieces."""
