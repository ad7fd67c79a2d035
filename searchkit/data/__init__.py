"""Text in: reading catalogs, the one text pipeline, splits, spelling, product types, completions, search logs."""
