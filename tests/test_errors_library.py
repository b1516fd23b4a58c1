"""The error paths of the library functions, and the real `seqlm` executable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import seqlm
from seqlm.data.preflight import check_corpus_fits, check_prefix
from seqlm.data.samplers import RandomSampler, SequentialSampler
from seqlm.data.text import read_text
from seqlm.data.tokenizers import CharTokenizer, WordTokenizer
from seqlm.data.vocab import Vocab
from seqlm.errors import DataError, UsageError
from seqlm.interfaces import Callback
from seqlm.runs.outputs import prepare_run_dir, write_json_atomic

SEQLM = Path(sys.executable).with_name("seqlm")


# -- reading the text ------------------------------------------------------------------


def test_not_utf8_names_the_offset_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"ok\nstill ok\nbad \xff here\n")
    with pytest.raises(DataError) as caught:
        read_text(path)
    message = str(caught.value)
    assert "byte offset 16" in message and "line 3" in message and "0xff" in message
    assert "--encoding" in message


def test_other_encodings_read(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("na\u00efve\n".encode("cp1252"))
    assert read_text(path, encoding="cp1252") == "na\u00efve\n"


def test_a_codec_that_is_not_a_text_encoding_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("hello\n")
    with pytest.raises(UsageError, match="--encoding 'rot13'"):
        read_text(path, encoding="rot13")


def test_a_device_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a regular file"):
        read_text("/dev/zero")


# -- fitting the corpus to the batches ---------------------------------------------------


@pytest.mark.parametrize("cls", [SequentialSampler, RandomSampler])
def test_corpus_check_agrees_with_min_tokens(cls) -> None:
    needed = cls(batch_size=4, num_steps=5).min_tokens()
    check_corpus_fits(cls, 4, 5, needed)
    with pytest.raises(DataError) as caught:
        check_corpus_fits(cls, 4, 5, needed - 1)
    message = str(caught.value)
    assert f"has {needed - 1} tokens" in message and f"at least {needed}" in message


def test_corpus_check_suggests_a_batch_size_that_fits() -> None:
    with pytest.raises(DataError) as caught:
        check_corpus_fits(SequentialSampler, 32, 35, 500, truncated=True)
    message = str(caught.value)
    suggested = int(message.split("--batch-size ")[1].split()[0])
    assert SequentialSampler(batch_size=suggested, num_steps=35).min_tokens() <= 500
    assert SequentialSampler(batch_size=suggested + 1, num_steps=35).min_tokens() > 500
    assert "--max-tokens" in message


def test_corpus_check_suggests_shorter_steps_when_no_batch_size_fits() -> None:
    with pytest.raises(DataError, match=r"--batch-size 1 --num-steps 4\b") as caught:
        check_corpus_fits(SequentialSampler, 8, 35, 10)
    assert "--max-tokens" not in str(caught.value)


# -- the prefix --------------------------------------------------------------------------


def _vocab(text: str, tokenizer) -> Vocab:
    return Vocab(tokenizer.tokenize([text]))


def test_prefix_of_known_tokens_is_fine() -> None:
    char = CharTokenizer()
    assert check_prefix("time", char, _vocab("the time machine", char), "letters") is None


def test_prefix_with_some_unknown_tokens_warns_with_the_cleaned_form() -> None:
    char = CharTokenizer()
    warning = check_prefix("The Time", char, _vocab("the time machine", char), "letters")
    assert warning is not None and "'T'" in warning and "--prefix 'the time'" in warning


def test_prefix_with_no_known_token_is_refused() -> None:
    word = WordTokenizer()
    with pytest.raises(UsageError, match="none of its tokens occurs"):
        check_prefix("zorblax", word, _vocab("the time machine", word), "letters")


class KnowsLowerCase(CharTokenizer):
    """Reads what it did not learn (capitals here) as <unk> itself, as a learned
    tokenizer (byte-pair encoding, say) does."""

    def tokenize(self, lines):
        return [[c if c.islower() or c == " " else "<unk>" for c in line] for line in lines]


def test_unk_from_the_tokenizer_itself_counts_as_unknown() -> None:
    lower = KnowsLowerCase()
    vocab = _vocab("the time machine", lower)
    assert "<unk>" in vocab  # as every vocabulary has it: not a sign the text knew it
    assert check_prefix("The time", lower, vocab, "none") == (
        "--prefix 'The time': the tokenizer reads part of it as <unk>")
    with pytest.raises(UsageError, match=r"none of its tokens occurs in the training text "
                       r"\(the tokenizer reads all of it as <unk>\)"):
        check_prefix("TT", lower, vocab, "none")


def test_a_blank_prefix_is_refused_as_seqlm_run_refuses_it() -> None:
    word = WordTokenizer()
    with pytest.raises(UsageError, match="--prefix is empty; give some text"):
        check_prefix("   ", word, _vocab("the time machine", word), "none")


def test_prefix_with_no_tokens_is_refused() -> None:
    class Digits(WordTokenizer):
        def tokenize(self, lines):
            return [[w for w in line.split() if w.isdigit()] for line in lines]

    with pytest.raises(UsageError, match="--prefix 'the time' gives no tokens"):
        check_prefix("the time", Digits(), _vocab("1 2 3", Digits()), "none")


# -- the run folder ----------------------------------------------------------------------


def test_run_folders_made_in_the_same_second_differ(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    made = {prepare_run_dir(None) for _ in range(3)}
    assert len(made) == 3 and all(p.is_dir() for p in made)


def test_out_is_checked_writable_and_left_alone(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(UsageError, match="exists and is not a folder"):
        prepare_run_dir(afile)
    with pytest.raises(UsageError, match="cannot write there"):
        prepare_run_dir(afile / "run")
    assert afile.read_text() == "mine"


def test_failing_json_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"run": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"run": object()})  # not JSON: fails half way
    assert json.loads(path.read_text()) == {"run": 1}
    # No temporary file is left; the record of seqlm's own files lists the summary.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".seqlm-files.json", "summary.json"]


# -- the real executable -----------------------------------------------------------------


def _seqlm(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "SEQLM_DEBUG": "", **env}
    return subprocess.run([str(SEQLM), *args], capture_output=True, text=True, env=full_env,
                          timeout=120)


def test_executable_prints_one_line_and_exit_status(tmp_path: Path) -> None:
    missing = _seqlm("run", "--data", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o"))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"Error: --data {tmp_path / 'nope.txt'}: no such file; give the path of a text file"]
    usage = _seqlm("run", "--epochs", "0")
    assert usage.returncode == 2
    assert usage.stderr.strip() == "Error: --epochs must be a whole number of at least 1, got 0"
    assert not (tmp_path / "o").exists()


def test_executable_debug_shows_the_traceback(tmp_path: Path) -> None:
    for args, env in ((["--debug", "run"], {}), (["run"], {"SEQLM_DEBUG": "1"})):
        result = _seqlm(*args, "--data", str(tmp_path / "nope.txt"), **env)
        assert result.returncode == 1
        assert "Traceback (most recent call last)" in result.stderr
        assert "seqlm.errors.DataError" in result.stderr


def test_utf16_file_gets_the_utf16_hint(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("hello there\n", encoding="utf-16")
    with pytest.raises(DataError, match="UTF-16 mark; pass --encoding utf-16"):
        read_text(path)
    assert read_text(path, encoding="utf-16") == "hello there\n"


def test_unexpected_errors_are_one_line_with_a_hint() -> None:
    from seqlm.cli import describe_unexpected

    assert "out of memory; try a smaller --hidden" in describe_unexpected(MemoryError())
    assert "out of memory" in describe_unexpected(
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 4 GB"))
    disk = describe_unexpected(OSError(28, "No space left on device", "/x/summary.json"))
    assert disk.startswith("cannot access /x/summary.json: No space left on device")
    other = describe_unexpected(ValueError("first\nsecond"))
    assert other == "unexpected ValueError: first second (run with --debug for the traceback)"


def test_cli_turns_an_unforeseen_error_into_one_line(monkeypatch) -> None:
    from click.testing import CliRunner

    import seqlm.runs.stages
    from seqlm.cli import main

    def broken(*args, **kwargs):
        raise KeyError("line one\nline two")

    monkeypatch.setattr(seqlm.runs.stages, "run", broken)
    result = CliRunner().invoke(main, ["run"], env={"SEQLM_DEBUG": ""})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: unexpected KeyError: 'line one\\nline two' (run with --debug for the traceback)"]


def test_a_text_without_the_default_prefix_continues_its_own_opening(tmp_path) -> None:
    text = tmp_path / "cats.txt"
    text.write_text("the cat sat on the mat and the dog sat on the log. " * 40)
    result = seqlm.run(data=text, tokenizer="word", epochs=1, hidden=8, batch_size=4,
                       num_steps=5, predict=3, out=tmp_path / "run")
    assert result.config.prefix == "the cat"  # as many tokens as "time traveller" has
    assert result.sample.startswith("the cat ")
    saved = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert saved["state"]["config"]["prefix"] == "the cat"  # a resume continues the same
    with pytest.raises(UsageError, match="--prefix 'zebra': none of its tokens"):
        seqlm.run(data=text, tokenizer="word", epochs=1, hidden=8, batch_size=4,
                  num_steps=5, predict=3, prefix="zebra", out=tmp_path / "other")


# -- the library's own arguments -------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": "x"}, "--lr must be a number, got 'x'"),
    ({"seed": "a"}, "--seed must be a whole number, got 'a'"),
    ({"hidden": True}, "--hidden must be a whole number, got True"),
    ({"num_steps": True}, "--num-steps must be a whole number, got True"),
    ({"prefix": None}, "--prefix must be a string, got None"),
    ({"dropout": None}, "--dropout must be a number, got None"),
    ({"data": 123}, "--data must be a string or a path, got 123"),
    ({"device": 3}, "--device must be a string, got 3"),
    ({"cell_options": "x"}, "cell_options must be a dict of option names to values, got 'x'"),
    ({"hiden": 32}, "'hiden' is not a setting of seqlm.run; did you mean 'hidden'?"),
    ({"log": "tensorboard"}, "log takes a list of logger names, got 'tensorboard'; for one, "
                             "log=['tensorboard']"),
    ({"callbacks": [object()]}, "callbacks must be a list of seqlm.interfaces.Callback "
                                "instances, got object"),
    ({"callbacks": Callback()}, "callbacks must be a list of seqlm.interfaces.Callback "
                                "instances, got one Callback; give callbacks=[it]"),
    ({"callbacks": 3}, "callbacks must be a list of seqlm.interfaces.Callback instances, "
                       "got int"),
])
def test_run_refuses_what_python_lets_through_before_any_folder(tmp_path: Path, kwargs,
                                                                 message) -> None:
    with pytest.raises(UsageError) as caught:
        seqlm.run(out=tmp_path / "o", epochs=1, **kwargs)
    assert str(caught.value) == message
    assert not (tmp_path / "o").exists()


def test_run_hears_callbacks_given_as_a_generator(tmp_path: Path, small_text) -> None:
    class Counts(Callback):
        epochs = 0

        def on_epoch_end(self, trainer, metrics) -> None:
            Counts.epochs += 1

    seqlm.run(data=small_text, out=tmp_path / "g", epochs=2, hidden=8, batch_size=4,
              num_steps=5, predict=3, quiet=True, callbacks=(c for c in [Counts()]))
    assert Counts.epochs == 2


def test_run_takes_a_runconfig_or_keywords_and_can_be_quiet(tmp_path: Path, small_text,
                                                            capsys) -> None:
    with pytest.raises(UsageError, match="config must be a seqlm.RunConfig, got dict"):
        seqlm.run({"epochs": 2})
    result = seqlm.run(data=small_text, out=tmp_path / "q", epochs=1, hidden=8,
                       batch_size=4, num_steps=5, predict=3, quiet=True)
    assert result.summary["epochs"] == 1
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("kwargs, message", [
    ({"length": -1}, "length must be a whole number, 0 or more, got -1"),
    ({"length": "5"}, "length must be a whole number, 0 or more, got '5'"),
    ({"prefix": None}, "the prefix must be a str, got NoneType"),
    ({"greedy": False, "temperature": 0.0}, "--temperature must be from 0.001 to 1000"),
    ({"top_k": -3}, "top_k must be 0 (off) or a whole number of tokens, got -3"),
])
def test_generate_checks_its_arguments_before_the_model_runs(kwargs, message) -> None:
    from seqlm.cells.torch_cells import TorchRNN
    from seqlm.model.rnn import RNNModel

    vocab = Vocab(list("the time"))
    model = RNNModel(TorchRNN(input_size=len(vocab), hidden_size=4), len(vocab))
    args = {"prefix": "the", "length": 5, **kwargs}
    with pytest.raises(UsageError) as caught:
        seqlm.generate(model, vocab, CharTokenizer(), args.pop("prefix"), **args)
    assert str(caught.value).startswith(message)


def test_the_lazy_api_shows_in_dir_and_an_unknown_kind_is_named() -> None:
    assert {"run", "generate", "RunConfig", "get_plugins"} <= set(dir(seqlm))
    with pytest.raises(UsageError) as caught:
        seqlm.get_plugins().get("cells", "lstm")
    assert str(caught.value) == ("no kind of component is called 'cells'; the kinds are "
                                 "tokenizer, sampler, cell, trainer, callback")


def test_numpy_scalars_are_taken_as_the_numbers_they_are(small_text, tmp_path) -> None:
    import numpy as np

    result = seqlm.run(data=small_text, out=tmp_path / "r", epochs=np.int64(1),
                       hidden=np.int32(8), lr=np.float32(0.5), batch_size=4, num_steps=8,
                       max_tokens=1500, predict=3)
    assert (result.config.hidden, result.config.lr) == (8, 0.5)
    assert type(result.config.hidden) is int and type(result.config.lr) is float
    json.loads((tmp_path / "r" / "summary.json").read_text())  # written as plain numbers
    with pytest.raises(UsageError, match="--hidden must be a whole number"):
        seqlm.run(data=small_text, out=tmp_path / "s", hidden=np.float64(8.5))
    flagged = seqlm.run(data=small_text, out=tmp_path / "t", epochs=1, hidden=8, batch_size=4,
                        num_steps=8, max_tokens=1500, predict=3, average=np.bool_(True))
    assert flagged.config.average is True


def test_the_exported_helpers_refuse_wrong_types_in_one_line(small_text) -> None:
    text = small_text.read_text()
    char = CharTokenizer()
    with pytest.raises(UsageError, match="clean_lines takes the text as one str"):
        seqlm.clean_lines(["a line"], "letters")
    with pytest.raises(UsageError, match="the tokenizer must be a seqlm.Tokenizer instance"):
        seqlm.text_tokens(text, "char")
    with pytest.raises(UsageError, match="max_tokens must be a whole number, 0 or more"):
        seqlm.build_corpus(text, char, max_tokens="3")
    with pytest.raises(UsageError, match="max_tokens must be a whole number, 0 or more"):
        seqlm.build_corpus(text, char, max_tokens=-1)
    with pytest.raises(UsageError, match="no kind of component is called 'cells'"):
        seqlm.get_plugins().choices("cells")


def test_generate_names_an_argument_given_in_the_wrong_place(small_text, tmp_path) -> None:
    result = seqlm.run(data=small_text, out=tmp_path / "r", epochs=1, hidden=8, batch_size=4,
                       num_steps=8, max_tokens=1500, predict=3)
    with pytest.raises(UsageError, match=r"generate\(model, vocab, tokenizer, prefix, \.\.\.\): "
                       "the vocab must be a Vocab, got CharTokenizer"):
        seqlm.generate(result.model, result.tokenizer, result.vocab, "the", 5)
