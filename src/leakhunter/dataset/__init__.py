"""Datasets: finding recordings, splitting them, and the HDF5 split files."""
