"""A neuroscience-shaped pipeline: subjects and sessions entered by hand, raw
recordings imported from files, spikes detected per unit (a part table), and a
per-subject summary."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import dj_dagster as dj
from dj_dagster.orchestration import build_definitions
from dj_dagster.settings import dj_home

schema = dj.Schema(os.environ.get("DJ_NEURO_SCHEMA", "neuro"))
RAW_DIR = Path(os.environ.get("DJ_NEURO_RAW", dj_home() / "neuro_raw"))
RATE = 1000.0  # samples per second


def write_raw(subject: str, session: int, n_channels: int = 4, seconds: float = 2.0, seed: int = 0) -> Path:
    """Write a synthetic recording, as an acquisition system would."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    data = rng.normal(0, 1, (n, n_channels))
    for ch in range(n_channels):
        spikes = rng.choice(n, size=5 + 3 * ch, replace=False)
        data[spikes, ch] += 8
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    path = RAW_DIR / f"{subject}_{session}.npy"
    np.save(path, data)
    return path


@schema
class Subject(dj.Manual):
    definition = """
    subject : varchar(16)
    ---
    species = "mouse" : varchar(30)
    date_of_birth = null : date
    """


@schema
class Session(dj.Manual):
    definition = """
    -> Subject
    session : int16
    ---
    session_date : date
    raw_file : varchar(255)   # path of the raw recording, relative to the raw folder
    """


@schema
class Recording(dj.Imported):
    definition = """
    # raw traces read from the acquisition file
    -> Session
    ---
    n_channels : int16
    n_samples : int32
    traces : <blob@>   # in the object store
    """

    def make(self, key):
        path = RAW_DIR / (Session & key).fetch1("raw_file")
        data = np.load(path)
        self.insert1({**key, "n_channels": data.shape[1], "n_samples": data.shape[0], "traces": data})


@schema
class SpikeSort(dj.Computed):
    definition = """
    # threshold crossings per channel
    -> Recording
    ---
    threshold : float64
    n_units : int16
    """

    class Unit(dj.Part):
        definition = """
        -> master
        unit : int16
        ---
        spike_times : <blob@>   # seconds
        n_spikes : int32
        """

    def make(self, key):
        traces = (Recording & key).fetch1("traces")
        threshold = 5.0
        units = []
        for ch in range(traces.shape[1]):
            times = np.flatnonzero(traces[:, ch] > threshold) / RATE
            units.append({**key, "unit": ch, "spike_times": times, "n_spikes": len(times)})
        self.insert1({**key, "threshold": threshold, "n_units": len(units)})
        self.Unit.insert(units)


@schema
class SubjectSummary(dj.Computed):
    definition = """
    # spikes per subject over all sorted sessions
    -> Subject
    ---
    n_sessions : int32
    total_spikes : int64
    """

    @property
    def key_source(self):
        """A subject is summarized once it has sessions and every one is spike-sorted: the
        make reads SpikeSort, which is not among its foreign-key ancestors, so the key
        source is what waits for it. A later session needs the summary deleted to redo it."""
        return (Subject & Session) - (Session - SpikeSort).proj()

    def make(self, key):
        n_spikes = (SpikeSort.Unit & key).to_arrays("n_spikes")
        self.insert1({**key, "n_sessions": len(SpikeSort & key), "total_spikes": int(np.sum(n_spikes))})


defs = build_definitions(schema, name="neuro", partition_root=Session,
                         sensor_interval=int(os.environ.get("DJ_SENSOR_INTERVAL", "30")))
