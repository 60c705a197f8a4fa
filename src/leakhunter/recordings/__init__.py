"""Recordings, from file to features: which files are recordings (:mod:`.files`), reading,
checking and cleaning one (:mod:`.audio`; long ones in blocks, :mod:`.stream`), the one
log-mel front-end (:mod:`.features`), and synthetic recordings for demos and tests
(:mod:`.synth`)."""
