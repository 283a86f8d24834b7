"""Stochastic non-negative matrix factorisation with a provable stability bound (paper 1)."""
