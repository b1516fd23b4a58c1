"""One run from settings to outputs (:mod:`seqlm.runs.stages`), the run folder's files,
and reading saved runs back: generating, evaluating, listing and comparing them."""
