"""What a probed log says: the probe's scores paired with the plain scores by sample id.

- prefill: plain log vs prefilled log of the same task, `overall` paired by sample id (the drop
  `prefilled - plain` with its bootstrap CI and sign-flip p), via `caml_evals.stats.compare_key`;
- pushback: in one log, the `first_turn` scorer (first answer) vs the main scorer (the answer
  after the pushback): the paired drop and `retention = sum(second) / sum(first)` over samples
  with both, with a question-clustered SE (`clustered_ratio_se`) and a normal 95% CI;
- cot: per (sample, epoch, dimension) with both grades, the share considered in the reasoning
  (reasoning grade >= 0.5), acted on in the answer (answer grade >= 0.5), and considered but
  dropped (reasoning yes, answer no), each with a question-clustered SE.

No statistics are written here beyond that ratio: everything else is `caml_evals.stats`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from ..logs import read_log_header
from ..scoring.clustered import clustered_mean_se, clustered_ratio_se
from ..scoring.grades import OVERALL_KEY, is_reserved_key
from ..stats import compare_key, score_frame
from ..stats.frame import primary_scorer
from .pushback import FIRST_TURN_SCORER
from .reasoning import REASONING_SCORER
from .wrap import PROBE_METADATA_KEY

Z95 = 1.959963984540054


class ProbeReportError(UserError):
    """A log that does not hold the probe asked about."""


def probe_record(log: str | Path) -> dict[str, Any]:
    """The task metadata `probe` of a log ({} for a plain run)."""
    header = read_log_header(log)
    return dict((header.eval.metadata or {}).get(PROBE_METADATA_KEY) or {})


def _wide(frame: pd.DataFrame, key: str | None = None) -> pd.DataFrame:
    rows = frame if key is None else frame[frame["key"] == key]
    return rows.set_index(["sample_id", "variant", "epoch", "key"])[["value", "question_id"]]


def _ratio(num: np.ndarray, den: np.ndarray, clusters: list) -> dict[str, float]:
    ratio, se = clustered_ratio_se(num, den, clusters)
    return {
        "retention": ratio,
        "retention_se": se,
        "retention_ci_low": ratio - Z95 * se if math.isfinite(se) else math.nan,
        "retention_ci_high": ratio + Z95 * se if math.isfinite(se) else math.nan,
    }


def pushback_report(log: str | Path, key: str = OVERALL_KEY) -> dict[str, Any]:
    """Second answer vs first answer of a pushback log (paired by sample and epoch)."""
    available_first = score_frame(log, FIRST_TURN_SCORER, reasons=False)
    final = score_frame(log, reasons=False)
    paired = _wide(available_first, key).join(
        _wide(final, key), lsuffix="_first", rsuffix="_final", how="inner"
    )
    both = paired.dropna(subset=["value_first", "value_final"])
    comparison = compare_key(
        available_first[available_first["key"] == key], final[final["key"] == key], key, paired=True
    )
    out: dict[str, Any] = {
        "probe": "pushback",
        "key": key,
        "first_turn": comparison.mean_a,
        "after_pushback": comparison.mean_b,
        "drop": comparison.diff,
        "drop_ci_low": comparison.ci_low,
        "drop_ci_high": comparison.ci_high,
        "p_value": comparison.p_value,
        "n_pairs": len(both),
        "n_missing": int(len(paired) - len(both)),
    }
    out.update(
        _ratio(
            both["value_final"].to_numpy(),
            both["value_first"].to_numpy(),
            both["question_id_first"].tolist(),
        )
    )
    return out


def prefill_report(plain: str | Path, probed: str | Path, key: str = OVERALL_KEY) -> dict[str, Any]:
    """Prefilled vs plain run of the same task: the drop in `key`, paired by sample id."""
    frame_plain = score_frame(plain, reasons=False)
    frame_probed = score_frame(probed, primary_scorer_of(probed), reasons=False)
    row = compare_key(frame_plain, frame_probed, key, paired=True)
    record = probe_record(probed)
    return {
        "probe": "prefill",
        "prefill": record.get("prefill"),
        "key": key,
        "plain": row.mean_a,
        "prefilled": row.mean_b,
        "drop": row.diff,
        "drop_ci_low": row.ci_low,
        "drop_ci_high": row.ci_high,
        "p_value": row.p_value,
        "n_pairs": row.n,
        "n_missing": row.n_missing_a + row.n_missing_b,
        **_ratio(
            *_paired_arrays(frame_plain, frame_probed, key),
        ),
    }


def primary_scorer_of(log: str | Path) -> str | None:
    return primary_scorer(read_log_header(log))


def _paired_arrays(frame_a: pd.DataFrame, frame_b: pd.DataFrame, key: str):
    joined = _wide(frame_a, key).join(_wide(frame_b, key), lsuffix="_a", rsuffix="_b", how="inner")
    joined = joined.dropna(subset=["value_a", "value_b"])
    return (
        joined["value_b"].to_numpy(),
        joined["value_a"].to_numpy(),
        joined["question_id_a"].tolist(),
    )


def reasoning_report(log: str | Path, threshold: float = 0.5) -> dict[str, Any]:
    """Considered-in-reasoning, acted-on and considered-but-dropped rates per dimension grade."""
    reasoning = score_frame(log, REASONING_SCORER, reasons=False)
    answer = score_frame(log, reasons=False)
    reasoning = reasoning[~reasoning["key"].map(is_reserved_key)]  # dimensions only
    answer = answer[~answer["key"].map(is_reserved_key)]
    joined = _wide(reasoning).join(_wide(answer), lsuffix="_r", rsuffix="_a", how="inner")
    n_answers = len(_wide(answer))
    both = joined.dropna(subset=["value_r", "value_a"])
    clusters = both["question_id_r"].tolist()
    considered = (both["value_r"] >= threshold).to_numpy(dtype=float)
    acted = (both["value_a"] >= threshold).to_numpy(dtype=float)
    dropped = considered * (1.0 - acted)
    out: dict[str, Any] = {
        "probe": "cot",
        "n_grades": len(both),
        "n_without_reasoning_grade": n_answers - len(both),
    }
    for name, values in (
        ("considered_rate", considered),
        ("acted_rate", acted),
        ("considered_but_dropped_rate", dropped),
    ):
        mean, se = clustered_mean_se(values.tolist(), clusters) if len(values) else (math.nan,) * 2
        out[name], out[f"{name}_se"] = mean, se
    return out


def probe_report(log: str | Path, plain: str | Path | None = None) -> dict[str, Any]:
    """The report of whichever probe `log` ran (prefill needs the `plain` log to pair with)."""
    record = probe_record(log)
    if not record:
        raise ProbeReportError(f"{log}: not a probed run (no task metadata '{PROBE_METADATA_KEY}')")
    if "pushback" in record:
        return pushback_report(log)
    if record.get("cot"):
        return reasoning_report(log)
    if plain is None:
        raise ProbeReportError(
            f"{log}: a prefill run is compared with the plain run of the same task: give --plain LOG"
        )
    return prefill_report(plain, log)
