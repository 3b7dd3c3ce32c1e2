"""Text utilities that work on Korean output text (sentence splitting)."""

from kosum.text.sentences import first_sentence, split_sentences

__all__ = ["first_sentence", "split_sentences"]
