"""Head-to-head benchmarks: resilient and its peer libraries, in one process, in one run."""
