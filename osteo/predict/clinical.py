"""Age, sex and weight of one study, from the command line, the manifest or the DICOM header.

Precedence: a value given on the command line wins (the user said so explicitly), then the
manifest, then the DICOM header (PatientAge, PatientSex, PatientWeight). Header values outside
the ranges the manifest accepts are ignored with a note: devices often store 0 or 999 for
"unknown", which must not be read as a real weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from osteo.classification.inputs import clinical_vector
from osteo.data.manifest import AGE_RANGE, WEIGHT_RANGE_KG

__all__ = ["CLINICAL_FIELDS", "ClinicalValues", "resolve_clinical", "check_option"]

CLINICAL_FIELDS = ("age", "sex", "weight")
_RANGES = {"age": AGE_RANGE, "weight": WEIGHT_RANGE_KG}
_TAGS = {"age": "patient_age", "sex": "patient_sex", "weight": "patient_weight"}
_OPTION = {"age": "--age", "sex": "--sex", "weight": "--weight"}


@dataclass
class ClinicalValues:
    values: dict[str, float | str | None]  # age (years), sex ("F"/"M"), weight (kg)
    sources: dict[str, str] = field(default_factory=dict)  # option, manifest, dicom, imputed
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [name for name in CLINICAL_FIELDS if self.values.get(name) is None]

    def vector(self) -> np.ndarray:
        """``[age, sex_male, weight]`` in the data module's order; NaN where missing."""
        return clinical_vector(*(self.values.get(n) for n in CLINICAL_FIELDS))

    def missing_message(self, head: str) -> str:
        names = self.missing
        options = ", ".join(_OPTION[n] for n in names)
        return (
            f"head {head!r} needs {' and '.join(names)}, which the manifest, the options "
            f"({options}) and the DICOM header do not give"
        )


def check_option(name: str, value: str) -> float | str:
    """Parse a command-line clinical value; raises ValueError with the accepted range."""
    if name == "sex":
        sex = value.strip().upper()
        if sex not in ("F", "M"):
            raise ValueError(f"--sex must be F or M, got {value!r}")
        return sex
    lo, hi = _RANGES[name]
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--{name} must be a number, got {value!r}") from None
    if not lo <= number <= hi:
        raise ValueError(f"--{name} must be between {lo:g} and {hi:g}, got {value}")
    return number


def _from_header(name: str, tags: Mapping[str, object], notes: list[str]):
    value = tags.get(_TAGS[name])
    if value is None or value == "":
        return None
    if name == "sex":
        sex = str(value).strip().upper()
        if sex in ("F", "M"):
            return sex
        notes.append(f"DICOM PatientSex {value!r} is neither F nor M; ignored")
        return None
    lo, hi = _RANGES[name]
    if not lo <= float(value) <= hi:
        notes.append(f"DICOM {name} {value} is outside {lo:g}-{hi:g}; ignored")
        return None
    return float(value)


def resolve_clinical(
    options: Mapping[str, object],
    manifest: Mapping[str, object],
    tags: Mapping[str, object],
) -> ClinicalValues:
    """The values and where each came from; a value none of the three gives stays None."""
    values: dict[str, float | str | None] = {}
    sources: dict[str, str] = {}
    notes: list[str] = []
    for name in CLINICAL_FIELDS:
        value, source = options.get(name), "option"
        if value is None:
            value, source = manifest.get(name), "manifest"
        if value is None:
            # Read the header last, so an ignored header value is noted only when it mattered.
            value, source = _from_header(name, tags, notes), "dicom"
        values[name] = value
        if value is not None:
            sources[name] = source
    return ClinicalValues(values, sources, notes)
