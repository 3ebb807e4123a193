"""Public scorers and metrics for use in other Inspect suites.

from caml_evals.scorers import rubric_scorer, rubric_metrics, nan_mean_reducer
"""

from .scoring.dimensions import DimensionTable, RubricCriterion, RubricSampleMetadata
from .scoring.grades import Grade
from .scoring.metrics import rubric_metrics
from .scoring.reducers import nan_mean_reducer
from .scoring.rubric import rubric_scorer

__all__ = [
    "DimensionTable",
    "Grade",
    "RubricCriterion",
    "RubricSampleMetadata",
    "nan_mean_reducer",
    "rubric_metrics",
    "rubric_scorer",
]
