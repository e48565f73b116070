"""What every retailflow process shares, below the composition roots (`api/`, `worker.py`) and above the four
layers: typed settings, the adapter registry, the one Temporal client connection, metrics, tracing."""
