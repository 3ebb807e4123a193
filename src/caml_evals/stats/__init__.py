"""Statistics on eval scores: from Inspect logs (or plain arrays) to means with honest
uncertainty, model comparisons and power.

    frame = score_frame(["a.eval", "b.eval"])         # long table of every score (from the
                                                      # logs' sample summaries, cached per file)
    summarize(values, clusters=question_ids)          # mean, clustered SE, bootstrap CI
    summarize_frame(frame)                            # the same for every key of a frame
    compare(a, b, clusters=question_ids)              # paired diff, CI, sign-flip p, effect size
    compare_logs("a.eval", "b.eval")                  # per task x dimension, Holm-adjusted
    compare_logs("a.eval", "b.eval", cluster_by="source")  # translations = one cluster
    compare_key(frame_a, frame_b, "overall")          # one key of two frames, same pairing
    minimum_detectable_difference(sd=0.3, n_questions=200, n_epochs=5, icc=0.6)

Questions are the unit of resampling everywhere: epochs and variable expansions of one
question are clustered, never treated as independent. Missing scores are excluded and counted.
"""

from .compare import compare, compare_paired_matrix, compare_unpaired_matrix, effect_size
from .estimates import summarize, summarize_matrix
from .frame import (
    CLUSTER_BY,
    ScoreFrameError,
    UnreadableLogError,
    missing_counts,
    score_frame,
    score_to_float,
)
from .headline import HEADLINE_KEYS, choose_headline, headline_key
from .logcompare import (
    BOOKKEEPING_KEYS,
    LogCompareError,
    adjust_rows,
    compare_frames,
    compare_key,
    compare_logs,
    default_keys,
    is_bookkeeping,
    summarize_frame,
)
from .models import Comparison, ComparisonRow, Summary
from .multiple import adjust_pvalues
from .power import (
    PowerInputs,
    estimate_icc,
    mdd_from_se,
    minimum_detectable_difference,
    power_inputs,
    question_sd,
    questions_needed,
)
from .reader import read_log_scores

__all__ = [
    "BOOKKEEPING_KEYS",
    "CLUSTER_BY",
    "HEADLINE_KEYS",
    "Comparison",
    "ComparisonRow",
    "LogCompareError",
    "PowerInputs",
    "ScoreFrameError",
    "Summary",
    "UnreadableLogError",
    "adjust_pvalues",
    "adjust_rows",
    "choose_headline",
    "compare",
    "compare_frames",
    "compare_key",
    "compare_logs",
    "compare_paired_matrix",
    "compare_unpaired_matrix",
    "default_keys",
    "effect_size",
    "estimate_icc",
    "headline_key",
    "is_bookkeeping",
    "mdd_from_se",
    "minimum_detectable_difference",
    "missing_counts",
    "power_inputs",
    "question_sd",
    "questions_needed",
    "read_log_scores",
    "score_frame",
    "score_to_float",
    "summarize",
    "summarize_frame",
    "summarize_matrix",
]
