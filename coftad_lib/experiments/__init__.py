"""Experiments beyond the paper: studies of when and why fine-tuning helps, not library core."""
