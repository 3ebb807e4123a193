"""hellaswag benchmark task (see docs/hellaswag.md)."""
