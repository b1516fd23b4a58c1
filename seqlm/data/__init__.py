"""From a text file to token ids and batches: reading, cleaning and downloading text,
tokenizers, the vocabulary, the corpus, samplers, and the checks that a text fits a run."""
