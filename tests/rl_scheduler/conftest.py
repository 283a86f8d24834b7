import pytest

SMALL = {
    "n_instances": 4,
    "datasets": ["synthetic"],
    "noise_levels": [0.0, 1.0],
    "sizes": {"synthetic": [30, 20]},
    "ranks": [3],
    "steps_per_action": 5,
    "max_actions": 6,
}
"""Environment keyword arguments small enough for fast tests."""


@pytest.fixture
def small_kwargs():
    return dict(SMALL)
