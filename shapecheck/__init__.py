"""shapecheck: find shape, loss and label mismatches in deep-learning models before training."""

__version__ = "0.1.0"
