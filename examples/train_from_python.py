"""Train the seed's character-level LSTM from Python and print a continuation.

    python examples/train_from_python.py [PATH_TO_TEXT]

Without a path the book is downloaded once (or read from $SEQLM_DATA_DIR).
"""

import sys

import seqlm

result = seqlm.run(
    data=sys.argv[1] if len(sys.argv) > 1 else None,
    cell="lstm-scratch",
    epochs=100,
    out="runs/example-from-python",
    force=True,
)
print(f"final perplexity {result.summary['final_train_ppl']:.3f}")
print(result.sample)
print("continue the same model with other prefixes:")
for prefix in ("the time machine", "the medical man"):
    print(" ", seqlm.generate(result.model, result.vocab, result.tokenizer, prefix, 40))
