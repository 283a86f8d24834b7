"""Learned learning-rate schedules: a Gymnasium environment and a PPO agent (papers 1 and 2)."""
