"""Tests of the benchmark (bench/) and of what a sustained run must deliver."""
