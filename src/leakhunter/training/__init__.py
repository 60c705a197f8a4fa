"""`leakhunter train`: the entry point, resume and fine-tuning (:mod:`.train`), the loop
(:mod:`.trainer`), what it feeds the model (:mod:`.batches`), DDP under torchrun
(:mod:`.distributed`), and the run folder's files (:mod:`.run_folder`)."""
