"""MORU: Moral Reasoning Under Uncertainty (alien organisms, digital minds, AI values, humans)."""
