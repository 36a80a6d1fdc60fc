"""Runnable benchmarks; a package so that worker processes can import their workflows and tasks."""
