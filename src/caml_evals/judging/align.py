"""Line human ratings and judge grades up by item, as arrays the metrics work on.

Human ratings live on a discrete scale (yes/no = {0, 1}, or whatever finite set of values a lab
imported); per item they reduce to counts per scale value, which is all Krippendorff's alpha and
the pairwise statistics need. Judge grades stay raw floats (a logprob judge gives P(YES)); for
the categorical statistics they are snapped to the nearest scale value (ties go up, so 0.5 on a
yes/no scale counts as yes).

A judge *variant* is one column of judge values: one grader of one judging (log x scorer), or an
ensemble of several (majority vote, mean).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from .schema import HumanRating, RatingKey


class AlignError(UserError, ValueError):
    """Ratings and key do not fit together (unknown item ids, duplicate ratings)."""


@dataclass
class Variant:
    name: str
    values: np.ndarray  # (n,) float, NaN = no grade
    source: str
    grader: str
    kind: str = "grader"  # grader | majority | mean
    mode: str | None = None
    logprobs: bool = False
    missing_reasons: dict[str, int] = field(default_factory=dict)

    def info(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "grader": self.grader,
            "kind": self.kind,
            "mode": self.mode,
            "logprobs": self.logprobs,
            "missing_reasons": self.missing_reasons,
        }


@dataclass
class AlignedRatings:
    """One column per item (an answer's criterion). Per-dimension scopes select by
    `dimensions`, so the expansions of one dimension (one criterion per variable value) are
    pooled there as separate items of the same answer cluster."""

    item_ids: list[str]
    dimensions: np.ndarray  # (n,) str: the dimension name
    clusters: np.ndarray  # (n,) int: the answer each item belongs to (key content_hash)
    scale: np.ndarray  # (k,) sorted human rating values
    raters: list[str]
    rater_values: np.ndarray  # (R, n) float, NaN = not rated
    variants: dict[str, Variant]
    notes: dict[str, int | float] = field(default_factory=dict)
    criteria: np.ndarray | None = None  # (n,) str: the criterion label (default: dimension)

    def __post_init__(self) -> None:
        if self.criteria is None:
            self.criteria = self.dimensions.copy()

    @property
    def counts(self) -> np.ndarray:
        """(n, k) how many raters gave each item each scale value."""
        return np.stack([(self.rater_values == v).sum(axis=0) for v in self.scale], axis=1).astype(
            float
        )

    def snap(self, values: np.ndarray) -> np.ndarray:
        return snap_to_scale(values, self.scale)

    def subset(self, mask: np.ndarray) -> AlignedRatings:
        idx = np.nonzero(mask)[0]
        return AlignedRatings(
            item_ids=[self.item_ids[i] for i in idx],
            dimensions=self.dimensions[idx],
            criteria=self.criteria[idx],
            clusters=self.clusters[idx],
            scale=self.scale,
            raters=self.raters,
            rater_values=self.rater_values[:, idx],
            variants={
                k: Variant(**{**v.__dict__, "values": v.values[idx]})
                for k, v in self.variants.items()
            },
            notes=dict(self.notes),
        )


def snap_to_scale(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Codes (index into scale) of the nearest scale value, ties to the higher; -1 for NaN."""
    v = np.asarray(values, dtype=float)
    out = np.full(v.shape, -1, dtype=np.int64)
    ok = ~np.isnan(v)
    if ok.any():
        d = np.abs(v[ok][:, None] - scale[None, :])
        k = scale.size
        out[ok] = k - 1 - np.argmin(d[:, ::-1] + 1e-12 * np.arange(k)[None, :], axis=1)
    return out


def majority_codes(counts: np.ndarray) -> np.ndarray:
    """The most frequent category per row; -1 when there is no rating or a tie for first place."""
    counts = np.asarray(counts)
    best = counts.max(axis=1)
    n_best = (counts == best[:, None]).sum(axis=1)
    out = counts.argmax(axis=1).astype(np.int64)
    out[(best == 0) | (n_best > 1)] = -1
    return out


def human_means(counts: np.ndarray, scale: np.ndarray) -> np.ndarray:
    m = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m > 0, counts @ scale / np.where(m > 0, m, 1), np.nan)


def align(
    key: RatingKey,
    ratings: Sequence[HumanRating],
    drop_unsure: bool = False,
    include_unrated: bool = False,
) -> AlignedRatings:
    """Arrays of human ratings and every judge variant in the key, by item.

    Items nobody rated are left out (they would only dilute the bootstrap) unless
    `include_unrated`. Ratings of item ids not in the key are an error: they mean the ratings
    belong to another export.
    """
    unknown = sorted({r.item_id for r in ratings if r.item_id not in key.items})
    if unknown:
        raise AlignError(
            f"{len(unknown)} rated item id(s) are not in the key (ratings from another export?): "
            + ", ".join(unknown[:10])
        )
    seen: set[tuple[str, str]] = set()
    dupes = []
    for r in ratings:
        if (r.item_id, r.rater) in seen:
            dupes.append(f"{r.rater}/{r.item_id}")
        seen.add((r.item_id, r.rater))
    if dupes:
        raise AlignError(f"{len(dupes)} duplicate rating(s) (rater/item): " + ", ".join(dupes[:10]))

    n_unsure = sum(r.unsure for r in ratings)
    usable = [r for r in ratings if r.value is not None and not (drop_unsure and r.unsure)]
    rated = {r.item_id for r in usable}
    item_ids = [i for i in key.items if include_unrated or i in rated]
    index = {item: j for j, item in enumerate(item_ids)}
    raters = sorted({r.rater for r in usable})
    rindex = {name: j for j, name in enumerate(raters)}
    values = np.full((len(raters), len(item_ids)), np.nan)
    for r in usable:
        values[rindex[r.rater], index[r.item_id]] = r.value
    present = values[~np.isnan(values)]
    scale = np.unique(np.concatenate([present, [0.0, 1.0]]))

    entries = [key.items[i] for i in item_ids]
    # Bootstrap clusters are ANSWERS (the content hash), not pages: with `--per-item-pages` each
    # item is its own page, but the dimensions of one answer are still correlated.
    answer_index: dict[str, int] = {}
    clusters = np.array(
        [answer_index.setdefault(e.content_hash, len(answer_index)) for e in entries],
        dtype=np.int64,
    )
    dimensions = np.array([e.dimension for e in entries], dtype=object)
    criteria = np.array([e.criterion for e in entries], dtype=object)

    variants: dict[str, Variant] = {}
    for j, e in enumerate(entries):
        for s in e.sources:
            for grader, grade in s.grades.items():
                name = f"{s.label}/{grader}"
                v = variants.get(name)
                if v is None:
                    v = Variant(
                        name=name,
                        values=np.full(len(item_ids), np.nan),
                        source=s.label,
                        grader=grader,
                        mode=s.mode,
                        logprobs=s.logprobs,
                    )
                    variants[name] = v
                if grade.value is None:
                    reason = (grade.missing or "missing").split(":")[0]
                    v.missing_reasons[reason] = v.missing_reasons.get(reason, 0) + 1
                else:
                    v.values[j] = grade.value
    ordered: dict[str, Variant] = {}
    for source in dict.fromkeys(v.source for v in variants.values()):
        members = [name for name, v in variants.items() if v.source == source]
        ordered.update((m, variants[m]) for m in members)
        if len(members) > 1:  # each judging's ensembles right after its graders
            add_ensemble(ordered, f"{source}/majority", members, "majority", source=source)
            add_ensemble(ordered, f"{source}/mean", members, "mean", source=source)
    variants = ordered

    notes = {
        "items_in_key": len(key.items),
        "items_rated": len(rated),
        "items_unrated": len(key.items) - len(rated),
        "ratings": len(ratings),
        "ratings_used": len(usable),
        "ratings_unsure": n_unsure,
        "ratings_unsure_without_value": sum(r.value is None for r in ratings),
        "ratings_dropped_unsure": sum(
            1 for r in ratings if r.value is not None and drop_unsure and r.unsure
        ),
    }
    return AlignedRatings(
        item_ids=item_ids,
        dimensions=dimensions,
        criteria=criteria,
        clusters=clusters,
        scale=scale,
        raters=raters,
        rater_values=values,
        variants=variants,
        notes=notes,
    )


def add_ensemble(
    variants: dict[str, Variant],
    name: str,
    members: Iterable[str],
    how: str,
    source: str | None = None,
) -> Variant:
    """A judge made of several: `majority` (vote of yes/no at 0.5; a tie is no grade) or `mean`.

    Members without a grade on an item are skipped there; an item no member graded stays
    ungraded.
    """
    members = list(members)
    missing = [m for m in members if m not in variants]
    if missing:
        raise AlignError(
            f"ensemble {name!r}: unknown variant(s) {missing}; known: {sorted(variants)}"
        )
    if name in variants:
        raise AlignError(f"variant name {name!r} is taken")
    stack = np.stack([variants[m].values for m in members])
    present = ~np.isnan(stack)
    n = present.sum(axis=0)
    if how == "mean":
        with np.errstate(invalid="ignore"):
            values = np.where(n > 0, np.nansum(stack, axis=0) / np.maximum(n, 1), np.nan)
    elif how == "majority":
        yes = np.where(present, stack >= 0.5, False).sum(axis=0)
        no = n - yes
        values = np.where(yes > no, 1.0, np.where(no > yes, 0.0, np.nan))
        values[n == 0] = np.nan
    else:
        raise AlignError(f"ensemble {name!r}: unknown combination {how!r} (majority or mean)")
    v = Variant(
        name=name,
        values=values,
        source=source or "ensemble",
        grader="+".join(members),
        kind=how,
        mode=None,
        logprobs=any(variants[m].logprobs for m in members),
    )
    variants[name] = v
    return v
