"""`leakhunter build` and its datasets: finding labelled recordings (:mod:`.sources`),
their features (:mod:`.extract`), the split by sensor (:mod:`.splits`), the HDF5 split
files (:mod:`.store`), reading them for training (:mod:`.segments`), the build itself
(:mod:`.build`) and `leakhunter info` (:mod:`.info`)."""
