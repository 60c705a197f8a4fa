"""leakhunter: recordings of water pipes in, leak decisions out."""

__version__ = "0.1.0"
