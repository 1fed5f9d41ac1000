"""Pure core: data contract, features, detectors, decision policy, model bundle, training. No network, files or clocks."""
