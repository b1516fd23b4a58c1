"""The language model around a recurrent cell (:mod:`seqlm.model.rnn`), several read as
one (:mod:`seqlm.model.ensemble`), and text generation from either
(:mod:`seqlm.model.generation`)."""
