import os

# Two cores: keep each test process single-threaded so pytest-xdist workers do not oversubscribe.
# Set before numpy/torch are imported by anything below.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
