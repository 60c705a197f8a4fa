"""Incremental learning (`leakhunter learn`) and familiarity: selection of new segments by
the paper's rule, rounds of fine-tuning with lineage and exact resume, and the statistics
that tell ``predict`` and ``evaluate`` when a recording is unlike the training data."""
