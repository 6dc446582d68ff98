"""Simulation runner, cycle model, reports and benchmarks."""
