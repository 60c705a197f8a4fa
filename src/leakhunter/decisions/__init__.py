"""From a model to decisions: on a labelled split (:mod:`.evaluate`, with its plots in
:mod:`.plots`), a new decision rule as a new model file (:mod:`.calibrate`), on new
recordings (:mod:`.predict`), the files it writes (:mod:`.predictions_file`), and daily
operations: an appendable results file (:mod:`.results_log`) and watched folders
(:mod:`.watch`)."""
