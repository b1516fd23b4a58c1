"""Generating text from a trained model, one token at a time, on the model's device."""

from __future__ import annotations

from collections.abc import Callable

import torch

from seqlm.data.text import check_prefix_text
from seqlm.data.vocab import Vocab
from seqlm.errors import UsageError
from seqlm.interfaces import Tokenizer
from seqlm.model.ensemble import Ensemble
from seqlm.model.limits import check_generate_length, check_temperature
from seqlm.model.rnn import RNNModel

#: How often (in tokens) :func:`generate` reports its progress.
PROGRESS_EVERY = 1000


@torch.no_grad()
def generate(
    model: RNNModel | Ensemble,
    vocab: Vocab,
    tokenizer: Tokenizer,
    prefix: str,
    length: int = 50,
    *,
    greedy: bool = True,
    temperature: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> str:
    """Continue ``prefix`` with ``length`` tokens and return the whole text.

    The prefix warms up the state (tokens unknown to the vocabulary read as ``<unk>``);
    each next token is the most likely one when ``greedy`` (the seed's argmax), otherwise
    drawn from the softmax at ``temperature``, restricted to the ``top_k`` most likely
    tokens when ``top_k > 0``. Sampling never draws ``<unk>``, which stands for no
    particular text. ``on_progress(n)`` hears every :data:`PROGRESS_EVERY` tokens how
    many have been generated. An :class:`~seqlm.model.ensemble.Ensemble` generates as
    one model does, from the mean of its members' distributions.
    """
    # Checked here, before the model runs: each would otherwise fail midway, in torch.
    for value, kind, what in ((model, torch.nn.Module, "model"), (vocab, Vocab, "vocab"),
                              (tokenizer, Tokenizer, "tokenizer")):
        if not isinstance(value, kind):
            raise UsageError(f"generate(model, vocab, tokenizer, prefix, ...): the {what} must "
                             f"be a {kind.__name__}, got {type(value).__name__}")
    if not isinstance(prefix, str):
        raise UsageError(f"the prefix must be a str, got {type(prefix).__name__}")
    check_prefix_text(prefix)  # as seqlm run and seqlm generate say it
    check_generate_length("length", length)
    if not greedy:
        check_temperature(temperature)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise UsageError(f"top_k must be 0 (off) or a whole number of tokens, got {top_k!r}")
    prefix_tokens = tokenizer.tokenize([prefix])[0]
    if not prefix_tokens:
        raise UsageError(f"the prefix {prefix!r} gives no tokens; give some text to continue")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    ids = torch.tensor([vocab[list(prefix_tokens)]], device=device)
    state = model.begin_state(1, device)
    logits, state = model(ids, state)
    # The tokens are picked and fed back on the device, and read once at the end: a
    # read per token would wait for the device to finish every step.
    generated = torch.empty(length, dtype=torch.long, device=device)
    for i in range(length):
        scores = logits[-1]
        if not greedy and len(vocab) > 1:
            scores = scores.clone()
            scores[vocab.unk] = float("-inf")
        next_id = _pick(scores, greedy, temperature, top_k, generator)
        generated[i] = next_id
        if on_progress is not None and (i + 1) % PROGRESS_EVERY == 0:
            on_progress(i + 1)  # a count of the host's: no wait for the device
        logits, state = model(next_id.view(1, 1), state)
    model.train(was_training)
    return tokenizer.detokenize(list(prefix_tokens) + vocab.to_tokens(generated.tolist()))


def _pick(
    logits: torch.Tensor, greedy: bool, temperature: float, top_k: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The next token's id, a 0-d tensor on the logits' device."""
    if greedy or temperature <= 0:
        return logits.argmax()
    logits = logits.float() / temperature
    if 0 < top_k < logits.numel():
        cutoff = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < cutoff, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if generator is not None and generator.device != probs.device:
        # A generator of another device (a CPU one for a CUDA model) draws there.
        return torch.multinomial(probs.to(generator.device), 1,
                                 generator=generator)[0].to(probs.device)
    return torch.multinomial(probs, 1, generator=generator)[0]
