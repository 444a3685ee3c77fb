"""The Julia fractal pipeline: every tier in four tables.

JuliaSpec (Manual) holds the constant ``c`` and a noise level; JuliaImage (Computed)
renders a noisy Julia set; DenoiseMethod (Lookup) lists filters with parameters;
Denoised (Computed) applies each filter and scores it against the clean image."""

from __future__ import annotations

import os

import numpy as np

import dj_dagster as dj
from dj_dagster.orchestration import build_definitions

schema = dj.Schema(os.environ.get("DJ_FRACTAL_SCHEMA", "fractal"))
SIZE = 96


def julia(c: complex, size: int = SIZE, iterations: int = 60) -> np.ndarray:
    """Escape-time rendering of the Julia set of z**2 + c, scaled to [0, 1]."""
    y, x = np.mgrid[-1.5:1.5:size * 1j, -1.5:1.5:size * 1j]
    z = x + 1j * y
    counts = np.zeros(z.shape)
    alive = np.ones(z.shape, bool)
    for _ in range(iterations):
        z[alive] = z[alive] ** 2 + c
        alive &= np.abs(z) < 2
        counts += alive
    return counts / iterations


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    radius = max(1, int(3 * sigma))
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-(t ** 2) / (2 * sigma ** 2))
    kernel /= kernel.sum()
    padded = np.pad(img, radius, mode="reflect")
    rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, padded)
    return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, rows)


def median_filter(img: np.ndarray, size: int) -> np.ndarray:
    pad = size // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(img, pad, mode="reflect"), (size, size))
    return np.median(windows, axis=(-2, -1))


@schema
class JuliaSpec(dj.Manual):
    definition = """
    # parameters of one Julia set image
    spec_id : int16
    ---
    c_real : float64
    c_imag : float64
    noise_level : float64   # standard deviation of added Gaussian noise
    """


@schema
class JuliaImage(dj.Computed):
    definition = """
    # noisy rendering of a Julia set
    -> JuliaSpec
    ---
    clean : <blob>
    noisy : <blob>
    """

    def make(self, key):
        spec = (JuliaSpec & key).fetch1()
        clean = julia(complex(spec["c_real"], spec["c_imag"]))
        rng = np.random.default_rng(int(key["spec_id"]))
        noisy = clean + rng.normal(0, spec["noise_level"], clean.shape)
        self.insert1({**key, "clean": clean, "noisy": noisy})


@schema
class DenoiseMethod(dj.Lookup):
    definition = """
    # image filters to compare
    method_id : int16
    ---
    method : enum('gaussian', 'median', 'none')
    param : float64   # sigma for gaussian, window size for median
    """
    contents = [(0, "none", 0), (1, "gaussian", 1.0), (2, "gaussian", 2.0), (3, "median", 3)]


@schema
class Denoised(dj.Computed):
    definition = """
    # one filter applied to one noisy image
    -> JuliaImage
    -> DenoiseMethod
    ---
    image : <blob>
    mse : float64   # mean squared error against the clean image
    """

    def make(self, key):
        clean, noisy = (JuliaImage & key).fetch1("clean", "noisy")
        method, param = (DenoiseMethod & key).fetch1("method", "param")
        if method == "gaussian":
            out = gaussian_blur(noisy, param)
        elif method == "median":
            out = median_filter(noisy, int(param))
        else:
            out = noisy
        self.insert1({**key, "image": out, "mse": float(np.mean((out - clean) ** 2))})


SPECS = [
    (1, -0.8, 0.156, 0.15), (2, 0.285, 0.01, 0.2), (3, -0.4, 0.6, 0.25), (4, -0.70176, -0.3842, 0.1),
]

defs = build_definitions(schema, name="fractal", sensor_interval=int(os.environ.get("DJ_SENSOR_INTERVAL", "30")))
