"""nc_keras.data.text: the docstring corpus, the BPE tokenizer, next-token windows."""

import numpy as np
import pytest

from nc_keras.data import text


def test_docstring_corpus_is_fixed_and_distinct(tmp_path):
    (tmp_path / "b.py").write_text('"""Module b."""\ndef f():\n    """Same."""\n')
    (tmp_path / "a.py").write_text('"""Module a."""\nclass C:\n    """Same."""\n')
    (tmp_path / "bad.py").write_text("def (:\n")  # not Python: skipped
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.py").write_text('"""A test module."""\n')
    assert text.docstring_corpus(root=tmp_path) == ["Module a.", "Same.", "Module b."]
    assert text.docstring_corpus(max_documents=2, root=tmp_path) == ["Module a.", "Same."]
    with pytest.raises(FileNotFoundError, match="no Python docstrings"):
        text.docstring_corpus(root=tmp_path / "test" / "none")
    stdlib = text.docstring_corpus(max_documents=50)
    assert len(stdlib) == 50 == len(set(stdlib))


def test_tokenizer_reaches_its_vocabulary_and_round_trips():
    pytest.importorskip("tokenizers")
    documents = text.docstring_corpus(max_documents=400)
    tokenizer = text.train_tokenizer(documents, 700)
    assert tokenizer.get_vocab_size() == 700
    assert tokenizer.token_to_id(text.END_OF_TEXT) == 0
    sample = "Return the number of items; ünïcode and emoji 🙂 encode too."
    assert tokenizer.decode(tokenizer.encode(sample).ids) == sample
    again = text.train_tokenizer(documents, 700)
    assert again.encode(documents[3]).ids == tokenizer.encode(documents[3]).ids
    with pytest.raises(ValueError, match="at least 257"):
        text.train_tokenizer(documents, 100)


def test_token_windows_shift_by_one_and_weight_padding_zero():
    x, y, w = text.token_windows([[5, 6, 7], [8, 9]], sequence_length=4)
    stream = [5, 6, 7, 0, 8, 9, 0]  # documents joined by the separator 0
    np.testing.assert_array_equal(x, [[5, 6, 7, 0], [8, 9, 0, 0]])
    np.testing.assert_array_equal(y, [[6, 7, 0, 8], [9, 0, 0, 0]])
    np.testing.assert_array_equal(w, [[1, 1, 1, 1], [1, 1, 0, 0]])
    assert w.sum() == len(stream) - 1  # every real next token, once
    assert x.dtype == y.dtype == np.int32 and w.dtype == np.float32
    x, _, _ = text.token_windows([[1] * 100], sequence_length=8, max_sequences=3)
    assert x.shape == (3, 8)
