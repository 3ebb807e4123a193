"""advanced_ai_risk benchmark task (see docs/advanced_ai_risk.md)."""
