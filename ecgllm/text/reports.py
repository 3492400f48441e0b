"""Normalised English reports from SCP statements (PTB-XL's own reports are often German and terse).

english_report({"SR": 0.0, "IMI": 100.0, "LAFB": 100.0})
# 'sinus rhythm. inferior myocardial infarction. left anterior fascicular block.'
"""

from __future__ import annotations

from .vocab import statements

_NORMAL_LAST = ("NORM",)


def english_report(labels: dict[str, float]) -> str:
    """Rhythm statements first, then diagnostic ones (most likely first), then form statements;
    each as scp_statements.csv's description, lower case, PTB-XL style "a. b. c." Unknown codes
    are kept as their code. Empty labels give ''."""
    table = statements().table
    known = [c for c in labels if c in table.index]
    unknown = sorted(c for c in labels if c not in table.index)

    def kind(code: str) -> int:
        row = table.loc[code]
        if row["rhythm"] == 1:
            return 0
        if code in _NORMAL_LAST:
            return 3
        if row["diagnostic"] == 1:
            return 1
        return 2

    order = sorted(known, key=lambda c: (kind(c), -labels[c], c))
    parts = [str(table.loc[c, "description"]).lower() for c in order] + [c.lower() for c in unknown]
    return ". ".join(parts) + "." if parts else ""
