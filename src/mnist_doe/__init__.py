"""mnist_doe: a DVC design-of-experiments pipeline for MNIST-family image classification."""

__version__ = "0.1.0"
