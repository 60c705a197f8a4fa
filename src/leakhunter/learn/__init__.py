"""Incremental learning (`leakhunter learn`): selection of new segments by the paper's rule
(:mod:`.selection`), each round's datasets (:mod:`.data`), normalisation re-estimated on a
new site (:mod:`.adapt`), rounds of fine-tuning with lineage and exact resume
(:mod:`.rounds`), and their figures (:mod:`.report`). The statistics that tell ``predict``
and ``evaluate`` when a recording is unlike the training data live with the model
(:mod:`leakhunter.model.familiarity`)."""
