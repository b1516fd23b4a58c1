"""The language model around a recurrent cell (:mod:`seqlm.model.rnn`) and text
generation from it (:mod:`seqlm.model.generation`)."""
