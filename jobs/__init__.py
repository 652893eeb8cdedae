"""Vigil's Flink jobs: one module per job, each with build_pipeline(...) and main(argv)."""
