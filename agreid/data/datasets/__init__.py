"""Dataset adapters; importing this package registers every adapter in DATASET_REGISTRY."""
