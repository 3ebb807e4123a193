"""What a loader did with every source row, for every benchmark.

Rows that cannot become samples, and rows that become samples despite a problem (an unknown tag,
a duplicate id), are listed here; the report is logged, printed, and stored in the eval log's
task metadata (`dataset_report`, `dataset_problems`) so nothing is ever dropped silently.
"""

from __future__ import annotations

from collections import Counter

from pydantic import AliasChoices, BaseModel, Field


class RowProblem(BaseModel):
    row: int = Field(description="0-based row index in the source")
    question_id: str | None = Field(
        default=None, validation_alias=AliasChoices("question_id", "row_id")
    )
    kind: str = Field(
        description="e.g. invalid_row, empty_tag, unknown_tag, duplicate_id, bad_variables"
    )
    detail: str

    @property
    def row_id(self) -> str | None:
        return self.question_id


class DatasetReport(BaseModel):
    source: str
    rows: int = 0
    samples: int = 0
    problems: list[RowProblem] = Field(default_factory=list)

    def add(self, row: int, question_id: str | None, kind: str, detail: str) -> None:
        self.problems.append(RowProblem(row=row, question_id=question_id, kind=kind, detail=detail))

    def counts(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems))

    def summary(self) -> str:
        head = f"{self.source}: {self.rows} rows -> {self.samples} samples"
        if not self.problems:
            return head + ", no problems"
        parts = []
        for kind, n in sorted(self.counts().items()):
            ids = sorted({p.question_id or f"row {p.row}" for p in self.problems if p.kind == kind})
            more = ", ..." if len(ids) > 12 else ""
            details = list(dict.fromkeys(p.detail for p in self.problems if p.kind == kind))
            examples = "; ".join(details[:3]) + ("; ..." if len(details) > 3 else "")
            parts.append(f"{kind}: {n} (ids {', '.join(ids[:12])}{more}: {examples})")
        return f"{head}; {len(self.problems)} problem(s): " + "; ".join(parts)
