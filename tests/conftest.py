import os

import matplotlib

matplotlib.use("Agg")
# Two cores: keep each test process single-threaded so pytest-xdist workers do not oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "1")
