"""Detectors behind one protocol (base.py), found by kind (registry.py): the Isolation Forest and its sklearn-free scorer."""
