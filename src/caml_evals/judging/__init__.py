"""Judge calibration: how far can the LLM judge be trusted?

export (blinded rating set + private key from rubric-scored logs) -> serve (web app for human
raters, SQLite) or import (CSV/JSONL) -> report (agreement of every judge variant with the
humans, human-human ceiling, bootstrap CIs, HTML + JSON). See docs/judging.md.
"""
