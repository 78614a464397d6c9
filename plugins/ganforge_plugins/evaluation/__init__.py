"""Evaluation of trained generators: the eval command and training callback, and run reports."""
