"""The model and what travels with it: the CNN (:mod:`.cnn`), model files written once and
read safely (:mod:`.checkpoint`), the model card, the one reader of a model file's metadata
and decision rule (:mod:`.card`), familiarity statistics (:mod:`.familiarity`), the metrics
of leak decisions (:mod:`.metrics`), running the model over segments (:mod:`.scoring`),
and the ONNX export (:mod:`.export`)."""
