"""The training loop: the default trainer (:mod:`seqlm.training.trainer`), data-parallel
training, CUDA graphs, validation, weight averaging, early stopping and stop signals."""
