from seqlm.data.vocab import UNK, Vocab, count_tokens


def test_unk_first_then_reserved_then_by_falling_frequency():
    vocab = Vocab([list("aabbbc")], reserved_tokens=["<pad>"])
    assert vocab.idx_to_token == [UNK, "<pad>", "b", "a", "c"]
    assert vocab.unk == 0
    assert len(vocab) == 5


def test_ties_keep_first_appearance_order():
    vocab = Vocab(list("xyzzyx"))
    assert vocab.idx_to_token[1:] == ["x", "y", "z"]


def test_min_freq_drops_rare_tokens_to_unk():
    vocab = Vocab([["the", "the", "cat"]], min_freq=2)
    assert "cat" not in vocab
    assert vocab["cat"] == vocab.unk
    assert vocab["the"] == 1


def test_lookup_of_lists_and_back():
    vocab = Vocab([list("hello")])
    ids = vocab[list("hello")]
    assert vocab.to_tokens(ids) == list("hello")
    assert vocab.to_tokens(ids[0]) == "h"
    assert vocab[["h", "?"]] == [vocab["h"], 0]


def test_count_tokens_accepts_flat_and_nested():
    assert count_tokens(["a", "b", "a"]) == count_tokens([["a"], ["b", "a"]])


def test_dict_round_trip_is_exact():
    vocab = Vocab([list("time traveller")], reserved_tokens=["<bos>"])
    again = Vocab.from_dict(vocab.to_dict())
    assert again.idx_to_token == vocab.idx_to_token
    assert again.token_to_idx == vocab.token_to_idx


def test_from_dict_rejects_garbage():
    import pytest

    for bad in ({}, {"idx_to_token": ["a"]}, {"idx_to_token": [UNK, "a", "a"]},
                {"idx_to_token": [UNK, 3]}):
        with pytest.raises(ValueError):
            Vocab.from_dict(bad)
