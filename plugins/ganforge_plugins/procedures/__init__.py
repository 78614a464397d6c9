"""Training procedures: the mathematics of each method, hosted by the engine's one loop."""
