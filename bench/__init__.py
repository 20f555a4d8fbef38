"""Benchmarks of fusionrec (benchmark-only code; not imported by the pipeline)."""
