"""Training: Lightning module and data module, augmentation, the `spotter train` driver."""
