"""seqlm generate with several runs, or several checkpoints of one: their ensemble."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import seqlm
from seqlm.cli import main
from seqlm.errors import UsageError
from seqlm.model.ensemble import Ensemble
from seqlm.model.generation import generate
from seqlm.runs.saved import generate_text, load_trained

#: A model that writes words, and overfits 2,000 characters well before its last epoch.
SMALL = dict(epochs=12, hidden=96, embedding_dim=8, max_tokens=2000, batch_size=8,
             num_steps=16, optimizer="adam", lr=0.02, predict=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, book_path):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gen-ensemble")
    for seed in (0, 1):
        seqlm.run(data=book_path, out=root / f"s{seed}", seed=seed, **SMALL)
    seqlm.run(data=book_path, out=root / "raw", clean="none", **SMALL)
    return root


def _greedy_by_hand(models, vocab, tokenizer, prefix: str, length: int) -> str:
    """Each next token the argmax of the mean of the models' softmax, fed back."""
    tokens = list(tokenizer.tokenize([prefix])[0])
    states = [m.begin_state(1, "cpu") for m in models]
    inputs = torch.tensor([vocab[tokens]])
    with torch.no_grad():
        for _ in range(length):
            probs = 0
            for i, m in enumerate(models):
                logits, states[i] = m(inputs, states[i])
                probs = probs + torch.softmax(logits[-1].float(), -1) / len(models)
            next_id = int(probs.argmax())
            tokens.append(vocab.to_tokens([next_id])[0])
            inputs = torch.tensor([[next_id]])
    return tokenizer.detokenize(tokens)


def test_the_ensemble_picks_what_its_members_find_likely_together(runs):
    a, b = load_trained(runs / "s0"), load_trained(runs / "s1")
    expected = _greedy_by_hand([a.model, b.model], a.vocab, a.tokenizer, "the time", 40)
    assert generate_text([runs / "s0", runs / "s1"], "the time", 40, greedy=True) == expected
    # Which is not what either member alone writes (else this test would test nothing).
    alone = {generate_text(runs / s, "the time", 40, greedy=True) for s in ("s0", "s1")}
    assert expected not in alone


def test_one_model_twice_writes_what_it_writes_alone(runs):
    trained = load_trained(runs / "s0")

    def sample(model) -> str:
        return generate(model, trained.vocab, trained.tokenizer, "the", 30, greedy=False,
                        generator=torch.Generator().manual_seed(5))

    assert sample(Ensemble([trained.model, trained.model])) == sample(trained.model)


def test_members_of_other_vocabularies_are_refused_by_the_ensemble_itself(runs):
    letters, raw = load_trained(runs / "s0"), load_trained(runs / "raw")
    ensemble = Ensemble([letters.model, raw.model])
    with pytest.raises(ValueError, match="members score vocabularies of 28 and "):
        ensemble(torch.tensor([[1, 2]]), ensemble.begin_state(1, "cpu"))


def test_an_ensembles_logits_are_the_log_of_the_mean_probability(runs):
    a, b = load_trained(runs / "s0"), load_trained(runs / "s1")
    ensemble = Ensemble([a.model, b.model])
    x = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        logits, state = ensemble(x, ensemble.begin_state(1, "cpu"))
        pa = torch.softmax(a.model(x, a.model.begin_state(1, "cpu"))[0].float(), -1)
        pb = torch.softmax(b.model(x, b.model.begin_state(1, "cpu"))[0].float(), -1)
    assert torch.allclose(logits.exp(), (pa + pb) / 2, atol=1e-6)
    assert len(state) == 2


def test_cli_generates_from_both_checkpoints_and_refuses_runs_that_read_text_otherwise(runs):
    runner = CliRunner()
    both = runner.invoke(main, ["generate", str(runs / "s0"), "--checkpoint", "both",
                                "--prefix", "the", "--length", "20", "--greedy"])
    assert both.exit_code == 0, both.output
    a = load_trained(runs / "s0", "best")
    b = load_trained(runs / "s0", "last")
    assert a.epoch != b.epoch  # two members, not one read twice
    assert both.output.strip() == _greedy_by_hand([a.model, b.model], a.vocab, a.tokenizer,
                                                  "the", 20)
    mixed = runner.invoke(main, ["generate", str(runs / "s0"), str(runs / "raw"),
                                 "--length", "5"])
    assert mixed.exit_code == 2
    assert f"{runs / 'raw'} uses --clean none, not --clean letters as {runs / 's0'}" in (
        " ".join(mixed.output.split()))
    assert "Traceback" not in mixed.output


def test_an_ensemble_takes_what_one_model_takes(runs):
    a, b = load_trained(runs / "s0"), load_trained(runs / "s1")
    ensemble = Ensemble(iter([a.model, b.model]))  # any iterable of models
    assert ensemble.vocab_size == a.model.vocab_size == len(a.vocab)
    x = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        fresh, _ = ensemble(x, None)  # None starts every member afresh, as for one model
        begun, _ = ensemble(x, ensemble.begin_state(1, "cpu"))
    assert torch.allclose(fresh, begun)
    with pytest.raises(UsageError, match="at least one member"):
        Ensemble(iter([]))
    with pytest.raises(UsageError, match="^an ensemble's members are models \\(torch "
                       "modules\\), got TrainedModel; give its .model$"):
        Ensemble([a, b])
