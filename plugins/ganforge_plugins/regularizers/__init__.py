"""Regularizers: penalties added to a network's loss and constraints applied after its optimiser step."""
