#!/usr/bin/env python3
"""Writes the .npy files of saxpy.toml into data/ (deterministic: rerunning gives the same bytes)."""
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261128)
n = 4096
x = rng.uniform(-1, 1, n).astype(np.float32)
y = rng.uniform(-1, 1, n).astype(np.float32)
# The reference in float64, rounded once to float32: what an fma computes.
expected = (2.5 * x.astype(np.float64) + y.astype(np.float64)).astype(np.float32)
os.makedirs(os.path.join(here, "data"), exist_ok=True)
for name, a in [("saxpy_x", x), ("saxpy_y", y), ("saxpy_expected", expected)]:
    np.save(os.path.join(here, "data", f"{name}.npy"), a)
