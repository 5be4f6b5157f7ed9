"""Benchmarks: the RLS task API against a naive baseline, over a delayed loopback link to PostgreSQL."""
