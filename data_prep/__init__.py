"""Scripts that prepare datasets the paper uses but that cannot be downloaded here (e.g. CIFAR-C)."""
