import os

# Two cores: keep each test process single-threaded so pytest-xdist workers do not oversubscribe.
# Set before numpy/torch are imported by anything below.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from hypothesis import settings  # noqa: E402

# CI draws the same examples on every run (a red CI is then reproducible, never a lucky draw);
# local runs keep exploring new examples. .ci/run selects the profile.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
