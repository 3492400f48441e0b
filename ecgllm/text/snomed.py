"""SNOMED-CT diagnosis codes (PhysioNet/CinC Challenge 2020/2021 `#Dx` lines) -> PTB-XL SCP codes.

    labels, axis, unmapped = snomed_to_scp(["426783006", "270492004", "39732003", "251199005"])
    # {'SR': 0.0, '1AVB': 100.0}, 'LAD', ['251199005']

The table is data (ecgllm/resources/snomed_scp.csv: snomed, abbreviation, name, scp, note), so
it can be audited and extended without code. Decisions written into it:
- the Challenge's equivalence classes are kept (LBBB = CLBBB, RBBB = CRBBB, PAC = SVPB,
  PVC = VPB): each maps to the one PTB-XL statement;
- axis deviations are not SCP statements: LAD/RAD become the PTB-XL `heart_axis` code;
- codes without a PTB-XL equivalent (bradycardia of unstated origin, a myocardial infarction
  without a territory, ventricular tachycardia, clinical diagnoses such as heart failure, ...) are
  not forced onto a near code: they are returned as unmapped, and readers keep and count them.
Likelihoods follow PTB-XL's convention: 100 for diagnostic statements, 0 for rhythm and form
statements (PTB-XL gives those no likelihood).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class SnomedCode:
    snomed: str
    abbreviation: str
    name: str
    scp: str | None  # PTB-XL SCP code, None when there is none
    axis: str | None  # PTB-XL heart_axis code for axis statements
    note: str = ""


@lru_cache(maxsize=1)
def snomed_table() -> dict[str, SnomedCode]:
    """The packaged SNOMED-CT -> SCP table, keyed by SNOMED code (a string of digits)."""
    path = resources.files("ecgllm") / "resources" / "snomed_scp.csv"
    out: dict[str, SnomedCode] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            note = row["note"] or ""
            axis = note.split("heart_axis", 1)[1].strip() if note.startswith("axis:") else None
            out[row["snomed"]] = SnomedCode(row["snomed"], row["abbreviation"], row["name"],
                                            row["scp"] or None, axis, note)  # fmt: skip
    return out


def _likelihood(code: str) -> float:
    from .vocab import statements

    table = statements().table
    return 100.0 if code in table.index and table.loc[code, "diagnostic"] == 1 else 0.0


def snomed_to_scp(codes: list[str]) -> tuple[dict[str, float], str | None, list[str]]:
    """SNOMED-CT codes -> (SCP code -> likelihood, PTB-XL heart_axis code or None, unmapped codes
    in input order). Blank entries are ignored; unknown codes are unmapped, never an error."""
    table = snomed_table()
    labels: dict[str, float] = {}
    axis: str | None = None
    unmapped: list[str] = []
    for raw in codes:
        code = str(raw).strip()
        if not code:
            continue
        entry = table.get(code)
        if entry is None or (entry.scp is None and entry.axis is None):
            unmapped.append(code)
        elif entry.scp is not None:
            labels[entry.scp] = _likelihood(entry.scp)
        else:
            axis = entry.axis
    return labels, axis, unmapped
