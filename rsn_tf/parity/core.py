"""What every parity checker shares: fixture loading, one check's result, the report and its lines.

A :class:`Check` is one comparison: its name, the worst figure found, the tolerance it was held to
(and where that tolerance comes from), and whether it passed. The report prints one line per check
and ends with ``parity: PASS`` or ``parity: FAIL <names of the failed checks>``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import numpy as np


@dataclasses.dataclass
class Fixture:
    """A loaded fixture: ``manifest`` (the JSON), ``arrays`` (the npz, loaded lazily by key)."""

    name: str
    kind: str
    manifest: dict
    arrays: "np.lib.npyio.NpzFile"
    npz_path: str
    json_path: str

    def has(self, key: str) -> bool:
        return key in self.arrays.files

    def get(self, key: str) -> np.ndarray:
        if key not in self.arrays.files:
            raise KeyError(f"{self.npz_path}: array {key!r} is missing (this fixture kind needs it)")
        return self.arrays[key]

    def keys(self, prefix: str = "") -> list[str]:
        return [k for k in self.arrays.files if k.startswith(prefix)]


def load_fixture(path: str) -> Fixture:
    """Load ``NAME.npz`` + ``NAME.json`` given either path; one clear error for a missing or bad file."""
    base, ext = os.path.splitext(os.fspath(path))
    if ext not in (".npz", ".json"):
        raise ValueError(f"{path}: expected a fixture .npz or .json (with its twin beside it)")
    npz_path, json_path = base + ".npz", base + ".json"
    for p in (npz_path, json_path):
        if not os.path.exists(p):
            raise FileNotFoundError(f"fixture file not found: {p} (a fixture is NAME.npz + NAME.json)")
    try:
        with open(json_path) as f:
            manifest = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or "kind" not in manifest:
        raise ValueError(f"{json_path}: expected a manifest object with a 'kind' field")
    try:
        arrays = np.load(npz_path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{npz_path}: not a readable .npz archive ({e})") from None
    return Fixture(os.path.basename(base), manifest["kind"], manifest, arrays, npz_path, json_path)


@dataclasses.dataclass
class Check:
    """One comparison.

    Attributes:
      name: short id, e.g. ``"step0.loss_terms"``.
      worst: the worst figure found (same unit as ``tolerance``).
      tolerance: the bound ``worst`` must not exceed.
      passed: ``worst <= tolerance`` unless the checker decides otherwise (e.g. counts).
      unit: what the figures measure, e.g. ``"rel"``, ``"px"``, ``"abs (0..255)"``.
      source: where the tolerance comes from, e.g. ``"3x fixture sensitivity"``.
      detail: anything else worth one line (where the worst value is, counts).
    """

    name: str
    worst: float
    tolerance: float
    passed: bool | None = None
    unit: str = ""
    source: str = ""
    detail: str = ""

    def __post_init__(self):
        if self.passed is None:
            self.passed = bool(np.isfinite(self.worst) and self.worst <= self.tolerance)

    def line(self) -> str:
        status = "ok  " if self.passed else "FAIL"
        unit = f" {self.unit}" if self.unit else ""
        src = f" ({self.source})" if self.source else ""
        detail = f"; {self.detail}" if self.detail else ""
        return f"{status} {self.name}: worst {self.worst:.3g}{unit} <= {self.tolerance:.3g}{src}{detail}"


class ParityReport:
    """The checks of one fixture, in order; ``ok`` only if every check passed (and there is one)."""

    def __init__(self, name: str, kind: str, log: Callable[[str], None] | None = None):
        self.name, self.kind, self.checks, self._log = name, kind, [], log

    def add(self, check: Check) -> None:
        self.checks.append(check)
        if self._log:
            self._log(check.line())

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not self.failed

    def summary(self) -> str:
        if not self.checks:
            return "parity: FAIL no checks ran"
        if self.ok:
            return "parity: PASS"
        return "parity: FAIL " + ", ".join(c.name for c in self.failed)

    def lines(self) -> list[str]:
        return [c.line() for c in self.checks] + [self.summary()]

    def to_dict(self) -> dict:
        return {"fixture": self.name, "kind": self.kind, "ok": self.ok,
                "checks": [dataclasses.asdict(c) for c in self.checks]}
