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

    def field(self, *path, default=KeyError):
        """``manifest[path[0]][path[1]]...``; a missing field is one clear KeyError (or ``default``)."""
        node = self.manifest
        for i, key in enumerate(path):
            if not isinstance(node, dict) or key not in node:
                if default is not KeyError:
                    return default
                where = ".".join(str(p) for p in path[:i + 1])
                raise KeyError(f"{self.json_path}: manifest field {where!r} is missing (this fixture kind needs it)")
            node = node[key]
        return node


def data_files(fixture: Fixture, data_dir: str | None, names) -> dict[str, str]:
    """Paths of the files the manifest names by file name (images, annotation/detection files) in ``data_dir``.

    Every name is checked before any long work: one FileNotFoundError lists what is missing and says to
    pass ``--data DIR`` (the folder holding them).
    """
    names = list(dict.fromkeys(str(n) for n in names))
    if data_dir is None:
        raise FileNotFoundError(f"{fixture.json_path} names data files ({', '.join(names[:3])}"
                                f"{' ...' if len(names) > 3 else ''}); pass --data DIR, the folder holding them")
    paths = {n: os.path.join(data_dir, n) for n in names}
    missing = [n for n, p in paths.items() if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of the {len(names)} files {fixture.json_path} names are not in "
                                f"{data_dir}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; "
                                "pass --data DIR, the folder holding the fixture's images and annotation files")
    return paths


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
      extra: machine-readable figures behind the line (kept in ``to_dict``; not printed).
    """

    name: str
    worst: float
    tolerance: float
    passed: bool | None = None
    unit: str = ""
    source: str = ""
    detail: str = ""
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.worst, self.tolerance = float(self.worst), float(self.tolerance)
        if self.passed is None:
            self.passed = bool(np.isfinite(self.worst) and self.worst <= self.tolerance)
        self.passed = bool(self.passed)

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
