"""mnist_doe: a DVC design-of-experiments pipeline for MNIST-family image classification.

The tree:
- the nine DVC stages, one module each, run as `python -m mnist_doe.<stage>` (dvc.yaml):
  `ingest`, `validate`, `split`, `augment`, `train`, `evaluate`, `confusion`, `submit`, `report`;
- `design`: the command that applies a ready-made design (`designs/*.yaml`) to params.yaml;
- `engine/`: the training engine, used by the train stage alone;
- `readers/`: the data readers (CSV, IDX, the embedded digits);
- `common/`: what the stages share (params, errors, files, paths, results, statistics).
"""

__version__ = "0.1.0"
