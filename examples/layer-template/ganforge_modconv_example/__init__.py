"""An example third-party ganforge layer: StyleGAN2's modulated convolution."""
