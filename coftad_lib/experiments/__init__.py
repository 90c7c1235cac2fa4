"""Experiments beyond the paper's tables: studies that test the method's claims (not library core)."""
