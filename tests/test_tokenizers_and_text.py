from seqlm.data.corpus import build_corpus
from seqlm.data.text import clean_letters, clean_lines
from seqlm.data.tokenizers import CharTokenizer, WordTokenizer


def test_seed_cleaning_keeps_letters_lower_case():
    assert clean_letters("The Time-Machine, by H. G. Wells!\n") == "the time machine by h g wells"
    assert clean_lines("A1b\n\n 42 \nC d\n") == ["a b", "c d"]


def test_clean_none_keeps_the_raw_text():
    text = "Hello, World!\n\n42\n"
    assert "".join(clean_lines(text, "none")) == text


def test_char_and_word_tokenizers_round_trip():
    lines = ["time traveller", "was here"]
    char, word = CharTokenizer(), WordTokenizer()
    assert char.tokenize(lines)[0] == list("time traveller")
    assert char.detokenize(char.tokenize(lines)[0]) == "time traveller"
    assert word.tokenize(lines) == [["time", "traveller"], ["was", "here"]]
    assert word.detokenize(["was", "here"]) == "was here"


def test_corpus_like_the_seed(book_path):
    """The seed's load_corpus_time_machine: 28 chars, vocab from the whole book."""
    text = book_path.read_text(encoding="utf-8")
    corpus = build_corpus(text, CharTokenizer(), max_tokens=10000)
    assert len(corpus) == 10000
    assert len(corpus.vocab) == 28
    assert corpus.vocab.idx_to_token[:4] == ["<unk>", " ", "e", "t"]
    everything = build_corpus(text, CharTokenizer(), max_tokens=0)
    assert len(everything) == 170580
    # Lines are joined without a separator, as in the seed.
    assert "".join(corpus.vocab.to_tokens(corpus.ids[:30].tolist())).startswith(
        "the time machine by h g wells"
    )


def test_word_corpus(book_path):
    corpus = build_corpus(book_path.read_text(encoding="utf-8"), WordTokenizer(), max_tokens=0)
    assert corpus.vocab.idx_to_token[1:3] == ["the", "i"]
    assert len(corpus) == 32775
