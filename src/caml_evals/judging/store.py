"""SQLite storage of a rating round: items, raters (hashed tokens) and ratings.

Every answer is committed as it arrives (one short transaction per request, WAL journal), so a
crash or restart loses nothing and several raters can work at once. A fresh connection per call
keeps the store safe to use from uvicorn's worker threads.

Tokens are stored as SHA-256 hashes: the database alone does not let anyone act as a rater; the
link is shown once, when the rater is created (or a new token is issued).
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ..errors import UserError
from ..outputs import ensure_dir
from .schema import HumanRating, RatingItem, RatingSet, RubricText

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY, position INTEGER NOT NULL, unit_id TEXT NOT NULL,
    question TEXT NOT NULL, answer TEXT NOT NULL, dimension TEXT NOT NULL, rubric TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS raters (
    name TEXT PRIMARY KEY, token_hash TEXT UNIQUE NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    item_id TEXT NOT NULL REFERENCES items(item_id), rater TEXT NOT NULL,
    value REAL, unsure INTEGER NOT NULL DEFAULT 0, comment TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL, updated TEXT NOT NULL, PRIMARY KEY (item_id, rater)
);
"""


class StoreError(UserError, ValueError):
    """A ratings database that cannot be used as asked (another rating set, an unknown item or
    rater, a clash) or cannot be read at all (not SQLite, corrupt, a folder)."""


def _rubric_json(item: RatingItem) -> str:
    """The item's rubric with its criterion label and variables, which `items()` reads back
    into the item (the items table has no columns of its own for them, so databases made
    before criteria need no migration)."""
    update = {"label": item.criterion, "variables": item.variables}
    return item.rubric.model_copy(update=update).model_dump_json()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class RatingStore:
    def __init__(self, path: str | Path, create: bool = True):
        """Open (and with `create`, create) the database; `create=False` for commands that
        only read one, so a mistyped path is an error instead of a new empty database."""
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder, not a ratings database")
        if not create and not self.path.is_file():
            raise StoreError(f"{self.path}: no such ratings database")
        ensure_dir(self.path.parent)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection in one transaction. A file that is not a (healthy) SQLite database
        is a StoreError naming it; constraint errors are left to the caller."""
        try:
            conn = sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as ex:
            raise StoreError(f"{self.path}: cannot open the ratings database: {ex}") from None
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            with conn:  # commits on success, rolls back on error
                yield conn
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as ex:
            raise StoreError(
                f"{self.path}: not a usable ratings database ({ex}); "
                "restore it from a backup or start a new one"
            ) from None
        finally:
            conn.close()

    # --- items ---------------------------------------------------------------------------------

    def load_rating_set(self, rating_set: RatingSet) -> int:
        """Add the set's items (idempotent). A database belongs to ONE rating set."""
        with self._db() as db:
            row = db.execute("SELECT value FROM meta WHERE key='set_id'").fetchone()
            if row is not None and row["value"] != rating_set.set_id:
                raise StoreError(
                    f"{self.path} holds rating set {row['value']}, not {rating_set.set_id}; "
                    "use a new database per rating set"
                )
            db.execute("INSERT OR IGNORE INTO meta VALUES ('set_id', ?)", (rating_set.set_id,))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('seed', ?)", (str(rating_set.seed),))
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i.item_id,
                        pos,
                        i.unit_id,
                        i.question,
                        i.answer,
                        i.dimension,
                        _rubric_json(i),
                    )
                    for pos, i in enumerate(rating_set.items)
                ],
            )
            return db.total_changes - before

    def meta(self, key: str) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row["value"]

    def item_ids(self) -> set[str]:
        with self._db() as db:
            return {r["item_id"] for r in db.execute("SELECT item_id FROM items")}

    def items(self) -> list[RatingItem]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM items ORDER BY position").fetchall()
        return [
            RatingItem(
                item_id=r["item_id"],
                unit_id=r["unit_id"],
                question=r["question"],
                answer=r["answer"],
                dimension=r["dimension"],
                rubric=RubricText.model_validate_json(r["rubric"]),
            )
            for r in rows
        ]

    def item_count(self) -> int:
        with self._db() as db:
            return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def units_for(self, rater: str) -> list[list[RatingItem]]:
        """The rater's pages: answers (with their items) in a per-rater seeded order.

        Each rater sees the answers in a different order (less order effect in the pooled
        ratings); the order is derived from the seed and the rater's name, so it is the same
        after a restart.
        """
        units: dict[str, list[RatingItem]] = {}
        for item in self.items():
            units.setdefault(item.unit_id, []).append(item)
        order = list(units)
        random.Random(f"{self.meta('seed')}:{rater}").shuffle(order)
        return [units[u] for u in order]

    # --- raters --------------------------------------------------------------------------------

    def add_rater(self, name: str) -> str:
        """Create a rater; returns the token (shown once: only its hash is stored)."""
        name = name.strip()
        if not name:
            raise StoreError("rater name is empty")
        token = secrets.token_urlsafe(24)
        with self._db() as db:
            if db.execute("SELECT 1 FROM raters WHERE name=?", (name,)).fetchone():
                raise StoreError(f"rater {name!r} exists (issue a new link with new_token)")
            db.execute("INSERT INTO raters VALUES (?, ?, ?)", (name, hash_token(token), _now()))
        return token

    def new_token(self, name: str) -> str:
        token = secrets.token_urlsafe(24)
        with self._db() as db:
            cur = db.execute(
                "UPDATE raters SET token_hash=? WHERE name=?", (hash_token(token), name)
            )
            if cur.rowcount == 0:
                raise StoreError(f"no rater {name!r}")
        return token

    def raters(self) -> list[str]:
        with self._db() as db:
            return [r["name"] for r in db.execute("SELECT name FROM raters ORDER BY name")]

    def rater_for_token(self, token: str | None) -> str | None:
        if not token:
            return None
        with self._db() as db:
            row = db.execute(
                "SELECT name FROM raters WHERE token_hash=?", (hash_token(token),)
            ).fetchone()
        return None if row is None else row["name"]

    # --- ratings -------------------------------------------------------------------------------

    def save(self, rating: HumanRating, source: str = "app", replace: bool = True) -> None:
        with self._db() as db:
            self._save(db, rating, source, replace)

    def _save(
        self, db: sqlite3.Connection, rating: HumanRating, source: str, replace: bool
    ) -> None:
        if db.execute("SELECT 1 FROM items WHERE item_id=?", (rating.item_id,)).fetchone() is None:
            raise StoreError(f"unknown item id {rating.item_id!r}")
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        db.execute(
            f"{verb} INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                rating.item_id,
                rating.rater,
                rating.value,
                int(rating.unsure),
                rating.comment,
                source,
                rating.updated or _now(),
            ),
        )

    @staticmethod
    def _clashes(db: sqlite3.Connection, ratings: Iterable[HumanRating]) -> list[str]:
        return [
            f"{r.rater}/{r.item_id}"
            for r in ratings
            if db.execute(
                "SELECT 1 FROM ratings WHERE item_id=? AND rater=?", (r.item_id, r.rater)
            ).fetchone()
        ]

    def clashes(self, ratings: Iterable[HumanRating]) -> list[str]:
        """`rater/item` of each rating that is already in the database (what --replace would
        overwrite); the check an import makes, available without importing."""
        with self._db() as db:
            return self._clashes(db, ratings)

    def import_ratings(
        self,
        ratings: Iterable[HumanRating],
        source: str | Sequence[str],
        replace: bool = False,
    ) -> int:
        """Insert all ratings in ONE transaction; any conflict or unknown id aborts all of them.

        `source`: one label for all ratings, or one per rating (several files imported at once
        keep their file names). Returns the number of ratings written.
        """
        ratings = list(ratings)
        sources = [source] * len(ratings) if isinstance(source, str) else list(source)
        if len(sources) != len(ratings):
            raise ValueError("import_ratings: one source per rating")
        seen: set[tuple[str, str]] = set()
        for r in ratings:
            if (r.item_id, r.rater) in seen:
                raise StoreError(f"rater {r.rater!r} rates item {r.item_id!r} twice in one import")
            seen.add((r.item_id, r.rater))
        with self._db() as db:
            if not replace:
                clashes = self._clashes(db, ratings)
                if clashes:
                    raise StoreError(
                        f"{len(clashes)} rating(s) already in the database (use --replace to "
                        "overwrite): " + ", ".join(clashes[:10])
                    )
            for r, src in zip(ratings, sources):
                self._save(db, r, src, replace=True)
        return len(ratings)

    def delete(self, item_id: str, rater: str) -> bool:
        """Withdraw a rater's rating of an item (e.g. an 'unsure' mark taken back)."""
        with self._db() as db:
            cur = db.execute("DELETE FROM ratings WHERE item_id=? AND rater=?", (item_id, rater))
        return cur.rowcount > 0

    def ratings(self, rater: str | None = None) -> list[HumanRating]:
        query = "SELECT * FROM ratings"
        args: tuple = ()
        if rater is not None:
            query += " WHERE rater=?"
            args = (rater,)
        with self._db() as db:
            rows = db.execute(query + " ORDER BY rater, item_id", args).fetchall()
        return [
            HumanRating(
                item_id=r["item_id"],
                rater=r["rater"],
                value=r["value"],
                unsure=bool(r["unsure"]),
                comment=r["comment"],
                updated=r["updated"],
            )
            for r in rows
        ]

    def ratings_by_item(self, rater: str) -> dict[str, HumanRating]:
        return {r.item_id: r for r in self.ratings(rater)}

    def export_json(self) -> str:
        return json.dumps([r.model_dump() for r in self.ratings()], indent=2)
