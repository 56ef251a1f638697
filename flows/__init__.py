"""Prefect flows that validate, retrain and promote detectors; wiring over ``ids``."""
