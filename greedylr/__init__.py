"""GreedyLR: a loss-feedback learning-rate scheduler for torch optimizers (paper 3)."""
