"""strongreject benchmark task (see docs/strongreject.md)."""
