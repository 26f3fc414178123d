"""Text for language models on any machine, offline: the standard library's docstrings.

Token-level neural collapse (Wu & Papyan, NeurIPS 2024, "Linguistic
Collapse") needs a real text corpus and a real subword tokenizer. Every
Python installation carries one corpus: the documentation strings of its
standard library (about 7,700 docstrings, 1.6 MB of English prose and code,
with Python 3.11), so nothing is downloaded. `docstring_corpus` collects
them in a fixed order (sorted files, source order within a file);
`train_tokenizer` fits a byte-level BPE tokenizer (GPT-2's kind; the
`tokenizers` package, installed with the `text` extra) to a vocabulary
size; `token_windows` cuts the token stream into next-token training
examples (x, y, w) whose padded positions have weight 0.
"""

import ast
import os
import sysconfig

import numpy as np

__all__ = ["END_OF_TEXT", "docstring_corpus", "token_windows", "train_tokenizer"]

# The separator token between documents, as GPT-2's.
END_OF_TEXT = "<|endoftext|>"
# Folders of the standard library whose docstrings are left out: tests
# (mostly boilerplate), demos, and third-party packages.
_SKIPPED = {"site-packages", "dist-packages", "test", "tests", "idlelib", "turtledemo",
            "lib2to3", "__pycache__", "ensurepip"}


def docstring_corpus(max_documents=None, root=None):
    """The docstrings of the standard library (modules, classes, functions), in a fixed order.

    Each distinct docstring once (the first time it occurs): many methods
    share one ("Return repr(self)."), and repeated text would make equal
    contexts, hence equal features, for different next tokens.

    Args:
        max_documents: keep the first this many (None: all).
        root: the folder to read (default: this interpreter's standard library).
    Returns:
        A list of strings, one per docstring.
    Raises:
        FileNotFoundError: when `root` holds no Python source.
    """
    root = root or sysconfig.get_paths()["stdlib"]
    documents, seen = [], set()
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if name not in _SKIPPED)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            try:
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    tree = ast.parse(handle.read())
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue  # a few files are templates or in other encodings
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                     ast.AsyncFunctionDef)):
                    text = ast.get_docstring(node)
                    if text and text not in seen:
                        seen.add(text)
                        documents.append(text)
            if max_documents is not None and len(documents) >= max_documents:
                return documents[:max_documents]
    if not documents:
        raise FileNotFoundError(f"no Python docstrings under {root}")
    return documents


def train_tokenizer(documents, vocabulary_size):
    """A byte-level BPE tokenizer (GPT-2's kind) fitted to `documents`.

    Every byte is in the initial alphabet, so any text encodes (no unknown
    token); `END_OF_TEXT` is token 0. Deterministic for the same documents.

    Returns:
        A `tokenizers.Tokenizer`; `.encode(text).ids` gives token ids,
        `.decode(ids)` text, `.get_vocab_size()` the vocabulary size.
    """
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError as error:
        raise ImportError("the tokenizer needs the 'tokenizers' package: "
                          "pip install 'nc_keras[text]'") from error
    if vocabulary_size < 257:
        raise ValueError(f"vocabulary_size must be at least 257 (256 bytes and "
                         f"{END_OF_TEXT}); got {vocabulary_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocabulary_size, special_tokens=[END_OF_TEXT], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(documents, trainer)
    return tokenizer


def token_windows(token_ids, sequence_length, max_sequences=None, separator=0):
    """Next-token examples from documents of token ids.

    The documents are joined, `separator` (`END_OF_TEXT`) between them, and
    cut into windows of `sequence_length` + 1 tokens: x is a window's first
    `sequence_length` tokens, y the same shifted by one. The last window is
    padded with `separator`, and its padded positions get weight 0.

    Returns:
        (x, y, w): int32 (S, T), int32 (S, T) and float32 (S, T) arrays.
    """
    stream = []
    for ids in token_ids:
        stream.extend(ids)
        stream.append(separator)
    stream = np.asarray(stream, dtype=np.int32)
    span = sequence_length + 1
    count = max(1, -(-(len(stream) - 1) // sequence_length))
    if max_sequences is not None:
        count = min(count, int(max_sequences))
    padded = np.full(count * sequence_length + 1, separator, dtype=np.int32)
    used = min(len(stream), len(padded))
    padded[:used] = stream[:used]
    weights = np.zeros(len(padded) - 1, dtype=np.float32)
    weights[:used - 1] = 1.0
    starts = np.arange(count) * sequence_length
    index = starts[:, None] + np.arange(span)[None, :]
    windows = padded[index]
    return windows[:, :-1], windows[:, 1:], weights[index[:, :-1]]
