"""Checkpoints: the file format (:mod:`seqlm.checkpoints.format`), the callback that saves
them during training (:mod:`seqlm.checkpoints.saver`), and what a run's checkpoint must
hold to be resumed or used (:mod:`seqlm.checkpoints.runstate`)."""
