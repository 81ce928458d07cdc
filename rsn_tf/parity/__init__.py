"""Parity checks against fixtures made with the real mmpose code (``scripts/mmpose_parity.py``).

A fixture is a pair ``NAME.npz`` (arrays) + ``NAME.json`` (manifest). The manifest's ``kind`` names
its layout; one checker per kind reads any fixture of that kind, whatever its architecture, batch
or data:

========== ===================================== =========================================
kind       module                                what is compared
========== ===================================== =========================================
forward    :mod:`rsn_tf.parity.forward`          converted weights -> every head's output
pipeline   :mod:`rsn_tf.parity.pipeline`         box -> crop -> normalised input -> targets
train      :mod:`rsn_tf.parity.train`            losses, gradients, optimizer steps, BN stats
topdown    :mod:`rsn_tf.parity.topdown`          image + boxes -> keypoints and scores
========== ===================================== =========================================

Each kind module exposes ``check(fixture: Fixture, data_dir: str | None) -> list[Check]``;
:func:`run_fixture` loads the fixture, dispatches on its kind and returns a :class:`ParityReport`.
"""
from __future__ import annotations

import importlib

from rsn_tf.parity.core import Check, Fixture, ParityReport, load_fixture

#: kind -> module implementing ``check(fixture, data_dir) -> list[Check]``.
KINDS = {
    "forward": "rsn_tf.parity.forward",
    "pipeline": "rsn_tf.parity.pipeline",
    "train": "rsn_tf.parity.train",
    "topdown": "rsn_tf.parity.topdown",
}


def run_fixture(path: str, data_dir: str | None = None, log=None) -> ParityReport:
    """Run every check of the fixture at ``path`` (``.npz`` or ``.json``; its twin must sit beside it).

    ``data_dir`` holds the images and annotation/detection files the manifest names by file name
    (kinds that read data; default: the manifest's own data folder where it names one). ``log`` is
    called with each check's line as it finishes (e.g. ``print``).
    """
    fixture = load_fixture(path)
    if fixture.kind not in KINDS:
        raise ValueError(f"{fixture.json_path}: field 'kind' is {fixture.kind!r}; expected one of {sorted(KINDS)}")
    module = importlib.import_module(KINDS[fixture.kind])
    report = ParityReport(fixture.name, fixture.kind, log=log)
    for c in module.check(fixture, data_dir):
        report.add(c)
    return report


__all__ = ["Check", "Fixture", "KINDS", "ParityReport", "load_fixture", "run_fixture"]
