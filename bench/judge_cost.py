"""Judge cost at equal results: grader calls and tokens per sample, per-dimension vs single-call.

The model under test answers the AHB samples ONCE (`eval(..., score=False)`, one epoch); both
judging modes then grade those same answers (`inspect_ai.score`) with the AHB task's own scorer
for the mode (per_dimension: the published protocol, one `GRADE: C/I` call per criterion;
single_call: ours, one JSON call per sample), so the only difference is the judging mode.
Calls and tokens come from the rubric scorer's `grader_usage` score metadata (every grader call,
including the local logprob grader's forward passes); cut grader replies from the grader's
`stop_reason` in the scoring events.

A cost ratio means something only if both modes deliver the same grades, so the default grader is
a *scripted* judge (`scripted/` provider with a responder) that answers each mode's format (the
single-call JSON object; a `GRADE: YES|NO` verdict, or `GRADE: C|I` when the prompt asks for
that) with one and the same verdict for each (answer, criterion): whether the answer uses at
least `MIN_SHARED` content words of the criterion's guiding question and indicators. Its reply
is a short reason plus the verdict, its tokens are counted with the embedded model's tokenizer
(chat template included), so the token ratio is prompt and reply tokens, not caps. The bench
prints the agreement of the two modes' grades on the same answers beside the ratios; anything
below 100% with the scripted judge is a defect in a judging path, not judge noise.

A second run (`--embedded-judge`, on by default) grades with the embedded SmolLM2-135M judge:
labelled as such, it is a pipeline check (that model mostly fails to follow either format, so its
grades are largely missing, see `missing`) and shows the real cut rate at the grader cap.

The scripted run also prints what the judge checks cost (`checks_cost`): `criteria_order=both`
(single_call) and `judge_repeats=2` (both modes) graded on the same answers, as ratios of grader
calls and tokens to the plain run of the same mode, with what each check measured (a
deterministic judge: order effect and judge variance 0). Measured (scripted answers, 3 AHB
questions): both orders x2.00 calls and x2.00 tokens, judge_repeats=2 x2.00 and x2.00 in either
mode.

    python bench/judge_cost.py --limit 4                        # embedded model answers
    python bench/judge_cost.py --limit 4 --no-embedded-judge     # scripted judge only
    python bench/judge_cost.py --model openai/gpt-4o-mini --grader openai/gpt-4o --limit 20

Measured on 2 CPU cores shared with other work (load average ~9, 2026-12-02), the embedded model
answering the first 3 AHB questions (`OMP_NUM_THREADS=1 python bench/judge_cost.py --limit 3
--max-tokens 96 --grader-max-tokens 160`; `missing` and `cut` count grades and grader replies):

    scripted keyword judge (same verdict per answer x criterion in both modes; tokens by the SmolLM2 tokenizer)
    mode            samples  calls/sample  tokens/sample   missing     cut   wall s
    per_dimension         3          3.33           2559    0/10     0/10       0.2
    single_call           3          1.00           1617    0/10     0/3        0.1
    ratio per_dimension / single_call: calls x3.33, grader tokens x1.58; grades agree on 10/10 items graded by both (100%; 10 items)

    embedded judge caml/smollm2 (SmolLM2-135M: a pipeline check, not a judge)
    mode            samples  calls/sample  tokens/sample   missing     cut   wall s
    per_dimension         3          3.33           3023   10/10    10/10     275.8
    single_call           3          1.00           1655   10/10     3/3      182.7
    ratio per_dimension / single_call: calls x3.33, grader tokens x1.83; grades agree on 0/0 items graded by both (nan%; 10 items)

At equal grades, the published per-dimension protocol costs 3.3x the calls and 1.6x the prompt
and reply tokens of single-call judging on these questions (3.3 criteria each; both grow with
the criteria per question). The scripted judge writes one sentence per verdict; a judge that
reasons step by step, as the published template asks, writes more per call, which raises the
per-dimension token ratio. The 135M judge fills every reply up to the cap (`cut` 13/13) without
a parseable verdict, so its grades are all missing: its row measures the pipeline, not judging.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from inspect_ai import eval, score
from inspect_ai.log import EvalLog
from inspect_ai.model import GenerateConfig, Model, ModelOutput, ModelUsage, get_model

from caml_evals.scoring.dimensions import RubricCriterion
from caml_evals.scoring.judge_checks import judge_noise_stats
from caml_evals.scoring.rubric import criterion_labels
from caml_evals.tasks.ahb.task import ahb

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MIN_SHARED = 2
_WORD = re.compile(r"[a-z]{5,}")
_ASKS_C_OR_I = re.compile(r"GRADE:\s*['\"]?C\b|\bGRADE:\s*I\b")


def grader_cost(log: EvalLog, scorer: str = "rubric_scorer") -> tuple[list[int], list[int]]:
    """Grader calls and grader tokens per sample (and epoch) of a rubric-scored log."""
    calls, tokens = [], []
    for sample in log.samples or []:
        score_ = (sample.scores or {}).get(scorer)
        usage_by_grader = (score_.metadata or {}).get("grader_usage") if score_ else None
        if usage_by_grader is not None:
            calls.append(sum(int(u.get("calls", 0)) for u in usage_by_grader.values()))
            tokens.append(sum(int(u.get("total_tokens", 0)) for u in usage_by_grader.values()))
            continue
        calls.append(
            sum(
                1
                for e in sample.events
                if e.event == "model" and getattr(e, "role", None) == "grader"
            )
        )
        usage = (sample.role_usage or {}).get("grader")
        tokens.append(usage.total_tokens if usage else 0)
    return calls, tokens


def grader_stop_reasons(log: EvalLog) -> Counter:
    """stop_reason of every grader generation recorded in the samples' events."""
    reasons: Counter = Counter()
    for sample in log.samples or []:
        for event in sample.events:
            if event.event == "model" and getattr(event, "role", None) == "grader":
                output = getattr(event, "output", None)
                reasons[getattr(output, "stop_reason", "unknown") or "unknown"] += 1
    return reasons


def grades_by_item(log: EvalLog, scorer: str = "rubric_scorer") -> dict[tuple, float | None]:
    """(sample id, epoch, criterion label, grader) -> grade value (None when missing)."""
    out: dict[tuple, float | None] = {}
    for sample in log.samples or []:
        score_ = (sample.scores or {}).get(scorer)
        for grade in (score_.metadata or {}).get("grades", []) if score_ else []:
            label = grade.get("criterion") or grade["dimension"]
            out[(sample.id, sample.epoch, label, grade["grader"])] = grade.get("value")
    return out


def agreement(a: dict[tuple, float | None], b: dict[tuple, float | None]) -> dict[str, Any]:
    """Share of items graded alike (values at or above 0.5 count as 'meets') where both graded."""
    items = sorted(set(a) | set(b), key=str)
    both = [k for k in items if a.get(k) is not None and b.get(k) is not None]
    same = sum((a[k] >= 0.5) == (b[k] >= 0.5) for k in both)
    return {
        "items": len(items),
        "both_graded": len(both),
        "agree": same,
        "agreement": same / len(both) if both else float("nan"),
    }


# --------------------------------------------------------------------------- the scripted judge


def _input_text(sample: Any) -> str:
    if isinstance(sample.input, str):
        return sample.input
    return "\n".join(m.text for m in sample.input if m.role == "user")


def _content_words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


class KeywordJudge:
    """One verdict per (answer, criterion), whatever the judging mode asks; replies in its format.

    It knows the answers it will see (they were generated before grading) and each sample's
    criteria, and finds them in a prompt by their text, so it does not depend on the layout of
    the judge templates.
    """

    def __init__(self, log: EvalLog, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.samples: list[tuple[str, str, list[RubricCriterion], list[str]]] = []
        for sample in log.samples or []:
            rubric = [RubricCriterion.model_validate(c) for c in sample.metadata.get("rubric", [])]
            answer = sample.output.completion if sample.output else ""
            self.samples.append((_input_text(sample), answer, rubric, criterion_labels(rubric)))
        self.unmatched = 0

    def meets(self, answer: str, criterion: RubricCriterion) -> tuple[bool, list[str]]:
        wanted = _content_words(criterion.guiding_question + " " + criterion.observable_indicators)
        shared = sorted(_content_words(answer) & wanted)
        return len(shared) >= MIN_SHARED, shared[:3]

    def _sample_of(self, prompt: str):
        found = [s for s in self.samples if s[0] in prompt and s[1] in prompt]
        return max(found, key=lambda s: len(s[1])) if found else None

    def reply(self, prompt: str) -> str:
        sample = self._sample_of(prompt)
        if sample is None:
            self.unmatched += 1
            return "I cannot tell which answer this is."
        _, answer, rubric, labels = sample
        present = [(c, lab) for c, lab in zip(rubric, labels) if c.guiding_question in prompt]
        if '"grades"' in prompt:  # single call: one JSON entry per criterion
            grades = []
            for c, lab in present:
                ok, shared = self.meets(answer, c)
                grades.append({"dimension": lab, "reason": _reason(ok, shared), "meets": ok})
            return json.dumps({"grades": grades})
        if len(present) > 1:  # one criterion per call: the one named in the prompt
            present = [(c, lab) for c, lab in present if c.name in prompt][:1] or present[:1]
        if not present:
            self.unmatched += 1
            return "I cannot tell which criterion this is."
        ok, shared = self.meets(answer, present[0][0])
        if _ASKS_C_OR_I.search(prompt):
            verdict = "C" if ok else "I"
        else:
            verdict = "YES" if ok else "NO"
        return f"{_reason(ok, shared)}\nGRADE: {verdict}"

    def output(self, prompt: str) -> ModelOutput:
        text = self.reply(prompt)
        chat = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        n_in = len(self.tokenizer(chat, add_special_tokens=False)["input_ids"])
        n_out = len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1  # + EOS
        out = ModelOutput.from_content(model="scripted/keyword-judge", content=text)
        out.usage = ModelUsage(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out)
        return out


def _reason(ok: bool, shared: list[str]) -> str:
    if ok:
        return f"The answer takes up what the criterion looks for ({', '.join(shared)})."
    return "The answer does not take up what the criterion's guiding question looks for."


# ------------------------------------------------------------------------------------- running


def answer_once(args: argparse.Namespace, log_dir: str) -> tuple[EvalLog, float]:
    start = time.perf_counter()
    [log] = eval(
        ahb(data_dir=args.data_dir, epochs=1),
        model=args.model,
        limit=args.limit,
        max_tokens=args.max_tokens,
        score=False,
        log_dir=log_dir,
        display="none",
    )
    if log.status != "success":
        raise SystemExit(f"answering failed: {log.error}")
    return log, time.perf_counter() - start


def judging_scorer(args: argparse.Namespace, mode: str, logprobs: bool):
    """The AHB task's own scorer for `mode` (its protocol: template, verdict scale, values)."""
    options: dict[str, Any] = {"judge_mode": mode, "epochs": 1}
    if logprobs:
        options.update(judge_logprobs=True, verdict="yes_no")  # P(YES) needs the YES/NO scale
    task = ahb(data_dir=args.data_dir, **options)
    scorers = task.scorer if isinstance(task.scorer, list) else [task.scorer]
    return scorers[0]


def grade(log: EvalLog, scorer, grader: Model) -> tuple[EvalLog, float]:
    start = time.perf_counter()
    scored = score(
        log,
        scorers=[scorer],
        model_roles={"grader": grader},
        action="overwrite",
        display="none",
    )
    return scored, time.perf_counter() - start


def compare_modes(
    title: str, log: EvalLog, args: argparse.Namespace, grader_factory, logprobs: bool = False
) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    grades: dict[str, dict] = {}
    for mode in ("per_dimension", "single_call"):
        scorer = judging_scorer(args, mode, logprobs and mode == "per_dimension")
        scored, seconds = grade(log, scorer, grader_factory())
        calls, tokens = grader_cost(scored)
        grades[mode] = grades_by_item(scored)
        missing = sum(v is None for v in grades[mode].values())
        stops = grader_stop_reasons(scored)
        rows[mode] = {
            "samples": len(calls),
            "calls": statistics.mean(calls),
            "tokens": statistics.mean(tokens),
            "missing": missing,
            "grades": len(grades[mode]),
            "cut": stops.get("max_tokens", 0),
            "generations": sum(stops.values()),
            "seconds": seconds,
        }
    agree = agreement(grades["per_dimension"], grades["single_call"])
    print(f"\n{title}")
    print(
        f"{'mode':<15}{'samples':>8}{'calls/sample':>14}{'tokens/sample':>15}"
        f"{'missing':>10}{'cut':>8}{'wall s':>9}"
    )
    for mode, r in rows.items():
        print(
            f"{mode:<15}{r['samples']:>8}{r['calls']:>14.2f}{r['tokens']:>15.0f}"
            f"{r['missing']:>5}/{r['grades']:<4}{r['cut']:>4}/{r['generations']:<3}"
            f"{r['seconds']:>9.1f}"
        )
    pd, sc = rows["per_dimension"], rows["single_call"]
    print(
        f"ratio per_dimension / single_call: calls x{pd['calls'] / max(sc['calls'], 1e-9):.2f}, "
        f"grader tokens x{pd['tokens'] / max(sc['tokens'], 1e-9):.2f}; "
        f"grades agree on {agree['agree']}/{agree['both_graded']} items graded by both "
        f"({agree['agreement']:.0%}; {agree['items']} items)"
    )
    return {"modes": rows, "agreement": agree}


# ------------------------------------------------------------------- the judge checks' own cost

CHECKS = [  # (mode, label, extra task args): each check beside the plain run of its mode
    ("single_call", "plain", {}),
    ("single_call", "criteria_order=both", {"criteria_order": "both"}),
    ("single_call", "judge_repeats=2", {"judge_repeats": 2}),
    ("per_dimension", "plain", {}),
    ("per_dimension", "judge_repeats=2", {"judge_repeats": 2}),
]


def _measured(log: EvalLog) -> dict[str, float]:
    """What the checks measured, from the score records (`score()` re-scoring keeps the
    scorer's default metrics, which do not include the checks' own)."""
    metas = [
        (s.scores or {}).get("rubric_scorer").metadata or {}
        for s in log.samples or []
        if (s.scores or {}).get("rubric_scorer")
    ]
    out: dict[str, float] = {}
    orders = [m["order_effect"] for m in metas if "order_effect" in m]
    if orders:
        pairs = sum(o["pairs"] for o in orders)
        out["order_effect"] = (
            sum(o["abs_diff_sum"] for o in orders) / pairs if pairs else float("nan")
        )
    repeats = [
        calls for m in metas if "judge_repeats" in m for calls in m["judge_repeats"]["overall"]
    ]
    if repeats:
        out["judge_variance"] = judge_noise_stats(repeats, list(range(len(repeats))))[
            "judge_variance"
        ]
    return out


def checks_cost(title: str, log: EvalLog, args: argparse.Namespace, grader_factory) -> dict:
    """Extra grader calls and tokens of criteria_order=both and judge_repeats=2, as ratios to
    the plain run of the same judging mode on the same answers (the AHB task's own scorers)."""
    rows: dict[str, Any] = {}
    print(f"\n{title}")
    print(
        f"{'mode':<15}{'check':<22}{'calls/sample':>14}{'tokens/sample':>15}"
        f"{'calls x':>9}{'tokens x':>10}  measured"
    )
    for mode, label, extra in CHECKS:
        task = ahb(data_dir=args.data_dir, judge_mode=mode, epochs=1, **extra)
        scorer = task.scorer[0] if isinstance(task.scorer, list) else task.scorer
        scored, _ = grade(log, scorer, grader_factory())
        calls, tokens = grader_cost(scored)
        row = {"calls": statistics.mean(calls), "tokens": statistics.mean(tokens)}
        plain = rows.get((mode, "plain"), row)
        row["calls_ratio"] = row["calls"] / max(plain["calls"], 1e-9)
        row["tokens_ratio"] = row["tokens"] / max(plain["tokens"], 1e-9)
        measured = _measured(scored)
        row["measured"] = measured
        rows[(mode, label)] = row
        shown = ", ".join(f"{k} {v:.3f}" for k, v in measured.items()) or "-"
        print(
            f"{mode:<15}{label:<22}{row['calls']:>14.2f}{row['tokens']:>15.0f}"
            f"{row['calls_ratio']:>9.2f}{row['tokens_ratio']:>10.2f}  {shown}"
        )
    return {f"{mode}/{label}": row for (mode, label), row in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="caml/smollm2", help="the model under test")
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=160, help="answer cap")
    parser.add_argument(
        "--grader", default=None, help="a real grader model (default: the scripted judge)"
    )
    parser.add_argument("--grader-max-tokens", type=int, default=256, help="grader reply cap")
    parser.add_argument(
        "--embedded-judge",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also grade with the embedded SmolLM2-135M judge (a pipeline check)",
    )
    parser.add_argument(
        "--judge-logprobs",
        action="store_true",
        help="embedded judge's per-dimension mode grades by P(YES) (one forward pass)",
    )
    parser.add_argument(
        "--data-dir", default=os.environ.get("CAML_EVALS_DATA_DIR") or str(DEFAULT_DATA)
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    grader_config = GenerateConfig(max_tokens=args.grader_max_tokens)

    from transformers import AutoTokenizer

    from caml_evals.models.embedded import ensure_embedded_checkpoint

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        log, seconds = answer_once(args, str(Path(tmp) / "answers"))
        print(
            f"answers: {args.model}, {len(log.samples or [])} samples, cap {args.max_tokens} "
            f"tokens, {seconds:.1f} s; grader cap {args.grader_max_tokens} tokens"
        )
        if args.grader:
            results["grader"] = compare_modes(
                f"grader {args.grader}",
                log,
                args,
                lambda: get_model(args.grader, config=grader_config, memoize=False),
            )
        else:
            judge = KeywordJudge(log, AutoTokenizer.from_pretrained(ensure_embedded_checkpoint()))
            results["scripted"] = compare_modes(
                "scripted keyword judge (same verdict per answer x criterion in both modes; "
                "tokens by the SmolLM2 tokenizer)",
                log,
                args,
                lambda: get_model("scripted/keyword-judge", memoize=False, responder=judge.output),
            )
            results["scripted_checks"] = checks_cost(
                "judge checks, scripted keyword judge (grader calls and tokens vs the plain run "
                "of the same mode; a deterministic judge measures 0)",
                log,
                args,
                lambda: get_model("scripted/keyword-judge", memoize=False, responder=judge.output),
            )
            if judge.unmatched:
                print(f"WARNING: {judge.unmatched} judge prompt(s) matched no known answer")
        if args.embedded_judge:
            embedded = get_model("caml/smollm2", config=grader_config)
            results["embedded"] = compare_modes(
                "embedded judge caml/smollm2 (SmolLM2-135M: a pipeline check, not a judge)",
                log,
                args,
                lambda: embedded,
                logprobs=args.judge_logprobs,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
