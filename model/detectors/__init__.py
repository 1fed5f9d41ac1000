"""Anomaly detectors: the scikit-learn Isolation Forest and its fast, sklearn-free scorer."""
