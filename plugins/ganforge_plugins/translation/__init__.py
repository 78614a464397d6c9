"""Image-to-image translation: pix2pix, CycleGAN and StarGAN as training procedures composed from plugins."""
