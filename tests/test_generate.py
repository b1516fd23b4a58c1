"""Generation: repeatable under a seed, temperature and top-k as documented, unknown prefixes."""

from __future__ import annotations

import collections

import pytest
import torch
from click.testing import CliRunner

import seqlm
from seqlm.cli import main
from seqlm.model.generation import _pick, generate
from seqlm.runs.saved import generate_text


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, book_path):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("gen") / "run"
    seqlm.run(data=book_path, out=out, epochs=3, hidden=16, max_tokens=2000, batch_size=8,
              num_steps=10, predict=5)
    return out


def test_same_seed_same_text_and_different_seeds_differ(run_dir):
    a = generate_text(run_dir, "time", 40, seed=7)
    b = generate_text(run_dir, "time", 40, seed=7)
    others = {generate_text(run_dir, "time", 40, seed=s) for s in (1, 2, 3)}
    assert a == b
    assert len(a) == len("time") + 40 and a.startswith("time")
    assert len(others | {a}) > 1


def test_cli_generate_is_repeatable_and_greedy_matches_the_seed_argmax(run_dir):
    runner = CliRunner()
    args = ["generate", str(run_dir), "--prefix", "the ", "--length", "30", "--seed", "3"]
    first, second = runner.invoke(main, args), runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.output == second.output
    greedy = runner.invoke(main, ["generate", str(run_dir), "--prefix", "the ", "--length",
                                  "30", "--greedy", "--seed", "9"])
    top1 = runner.invoke(main, ["generate", str(run_dir), "--prefix", "the ", "--length",
                                "30", "--top-k", "1", "--seed", "4"])
    assert greedy.output == top1.output  # top-1 sampling is argmax whatever the seed


def test_unknown_prefix_characters_read_as_unk(run_dir):
    result = CliRunner().invoke(main, ["generate", str(run_dir), "--prefix", "Zé!time",
                                       "--length", "10", "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert "Zé!time" in result.output
    assert ("warning: --prefix 'Zé!time': '!', 'Z', 'é' not in the training text, read as <unk>; "
            "the text was cleaned to lower-case letters and spaces (--clean letters), so try "
            "--prefix 'z time'") in " ".join(result.output.split())


def test_a_prefix_of_no_known_token_is_refused_as_seqlm_run_refuses_it(run_dir):
    result = CliRunner().invoke(main, ["generate", str(run_dir), "--prefix", "123"])
    assert result.exit_code == 2
    assert ("Error: --prefix '123': none of its tokens occurs in the training text ('1', '2', "
            "'3'); use words or characters from the text") in " ".join(result.output.split())


@pytest.mark.parametrize("prefix", ["", "   "])
def test_empty_prefix_is_the_usage_error_seqlm_run_gives(run_dir, prefix):
    result = CliRunner().invoke(main, ["generate", str(run_dir), "--prefix", prefix])
    assert result.exit_code == 2
    assert result.output == ("Error: --prefix is empty; give some text for the model to "
                             "continue, for example --prefix 'time traveller'\n")


def _draws(logits, n=3000, **kwargs):
    g = torch.Generator().manual_seed(0)
    return collections.Counter(int(_pick(logits, False, generator=g, **kwargs))
                               for _ in range(n))


def test_top_k_draws_only_from_the_k_most_likely():
    logits = torch.tensor([0.0, 3.0, 1.0, 2.5, -1.0, 0.5])
    counts = _draws(logits, temperature=1.0, top_k=2)
    assert set(counts) == {1, 3}
    assert counts[1] > counts[3]  # still in proportion to their probabilities


def test_temperature_sharpens_and_flattens():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    cold = _draws(logits, temperature=0.05, top_k=0)
    hot = _draws(logits, temperature=50.0, top_k=0)
    assert cold[0] == sum(cold.values())  # nearly argmax
    assert len(hot) == 4 and min(hot.values()) > 0.2 * 3000  # nearly uniform
    plain = _draws(logits, temperature=1.0, top_k=0)
    expected = torch.softmax(logits, 0)[0].item() * 3000
    assert abs(plain[0] - expected) < 0.1 * 3000


def test_generate_on_a_tiny_model_respects_top_k_at_every_step():
    from seqlm.cells.torch_cells import TorchGRU
    from seqlm.data.tokenizers import CharTokenizer
    from seqlm.data.vocab import Vocab
    from seqlm.model.rnn import RNNModel

    vocab = Vocab(list("abcdefgh"))
    model = RNNModel(TorchGRU(len(vocab), 8), len(vocab))
    tokenizer = CharTokenizer()
    g = torch.Generator().manual_seed(1)
    text = generate(model, vocab, tokenizer, "abc", 30, greedy=False, top_k=2, generator=g)
    # Replay: each generated token must be among the 2 most likely after its history.
    state = model.begin_state(1, "cpu")
    model.eval()
    ids = vocab[list(text)]
    logits, state = model(torch.tensor([ids[:3]]), state)
    for next_id in ids[3:]:
        assert next_id in torch.topk(logits[-1], 2).indices.tolist()
        logits, state = model(torch.tensor([[next_id]]), state)


def test_generate_without_prefix_continues_the_runs_own(tmp_path):
    text = tmp_path / "cats.txt"
    text.write_text("the cat sat on the mat and the dog sat on the log. " * 40)
    out = tmp_path / "run"
    seqlm.run(data=text, tokenizer="word", epochs=1, hidden=8, batch_size=4, num_steps=5,
              predict=3, out=out)  # "time traveller" is not in it: the run used "the cat"
    result = CliRunner().invoke(main, ["generate", str(out), "--length", "4", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("the cat ") and "warning:" not in result.output
    other = CliRunner().invoke(main, ["generate", str(out), "--prefix", "the dog",
                                      "--length", "4", "--seed", "1"])
    assert other.output.startswith("the dog ")
