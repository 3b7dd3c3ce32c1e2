"""A rule-based Korean sentence splitter, used to keep the first sentence of a generated summary.

The seed cut its 8-beam + sampling outputs with nltk's English Punkt (`sent_tokenize`). English
rules misfire on Korean text in ways that matter here: they cut inside quotations
(`그는 "좋다."라고 말했다`), after initials and digits, and they cannot use Korean sentence-final
endings. This splitter knows the few things Korean news text needs; docs/inference.md compares it
with Punkt and kss on the bundled AI-Hub data (`kosum.text.sentence_eval` reproduces the numbers).

A sentence ends after a run of terminators (`. ? ! …` and their full-width forms) plus any
closing quotes/brackets, followed by whitespace or the end of the text, except:

* inside a quotation or bracket embedded in a longer sentence: `“A했다. B했다”고 말했다` is one
  sentence, while a quotation closed before a space (`“A했다. B했다.” 그는`) splits as usual;
* after a digit when the next word starts with a digit, or after a full date: decimals and dates
  that AI-Hub's text carries with spaces (`1. 5m`, `2020. 3. 15. 기준`) stay whole;
* after a Latin initial or a common abbreviation (`호머 B. 헐버트`, `Mr.`, `U.S.`, `etc.`);
* right after an opening bracket (`안전한(?) 방식`);
* after an ellipsis alone (`…`, `...`) unless it follows a sentence-final ending (다/요/죠/까).

Without a following space, a sentence still ends when the terminator follows 다/요/죠/까 and a
Hangul syllable comes next (`했다.그러나`), as generated text sometimes lacks the space.

Not for: tokenisation or cleaning; whitespace inside a sentence is kept as it is.
"""

from __future__ import annotations

import re

_TERMINATORS = ".?!…⋯。？！"
_CLOSERS = "\"'”’)]}」』〉》»"
# Paired quotation marks and brackets: a terminator between a pair does not end the sentence.
_PAIRS = {"“": "”", "‘": "’", "「": "」", "『": "』", "《": "》", "〈": "〉", "(": ")", "[": "]"}
_CLOSER_TO_OPENER = {close: open_ for open_, close in _PAIRS.items()}
_STRAIGHT_QUOTES = "\"'"
_ELLIPSIS = re.compile(r"^(?:…+|⋯+|\.{2,})$")
# Endings after which a terminator ends a sentence even without a following space.
_STRONG_ENDINGS = "다요죠까"
_CANDIDATE = re.compile("[" + re.escape(_TERMINATORS) + "]+[" + re.escape(_CLOSERS) + "]*")
_HANGUL = re.compile(r"[가-힣]")
_DATE_BEFORE = re.compile(r"\d{2,4}\. ?\d{1,2}\. ?\d{1,2}$")
_LATIN_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
# Lower-cased, without the final point; matched against the Latin word before a ".".
_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "no", "nos"),
        *("inc", "ltd", "co", "corp", "dept", "gen", "gov", "approx", "fig", "vol", "pp"),
        *("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
        *("e.g", "i.e", "a.m", "p.m", "u.s", "u.k", "u.n", "ph.d"),
    }
)


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, stripped, in order (an empty or blank text has none)."""
    text = text.strip()
    if not text:
        return []
    quoted = _quoted_spans(text)
    sentences = []
    start = 0
    for match in _CANDIDATE.finditer(text):
        end = match.end()
        if end < len(text) and not _ends_here(text, match, quoted):
            continue
        sentence = text[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = end
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def first_sentence(text: str) -> str:
    """The first sentence of `text` ("" for an empty text)."""
    sentences = split_sentences(text)
    return sentences[0] if sentences else ""


def _ends_here(text: str, match: re.Match[str], quoted: list[tuple[int, int]]) -> bool:
    """Whether the terminator run `match` (not at the end of `text`) ends a sentence."""
    start, end = match.start(), match.end()
    terminators = match.group().rstrip(_CLOSERS)
    before = text[start - 1] if start else ""
    after = text[end]
    if after.isspace():
        following = text[end:].lstrip()[:1]
    elif (
        terminators == match.group()
        and before
        and before in _STRONG_ENDINGS
        and _HANGUL.match(after)
    ):
        following = after
    else:
        return False
    if before in _PAIRS or any(open_ < start < close for open_, close in quoted):
        return False
    if _ELLIPSIS.match(terminators):
        return bool(before) and before in _STRONG_ENDINGS
    if terminators == ".":
        if before.isdigit() and (following.isdigit() or _DATE_BEFORE.search(text, 0, start)):
            return False
        latin = _LATIN_WORD_BEFORE.search(text, 0, start)
        if latin and (len(latin.group(1)) == 1 or latin.group(1).lower() in _ABBREVIATIONS):
            return False
    return True


def _quoted_spans(text: str) -> list[tuple[int, int]]:
    """(open, close) positions of the embedded quotations and brackets in `text`.

    Embedded: the closing mark is followed by a word (`“…다. …다”고 말했다`, a particle or
    ending), so the quotation is part of a longer sentence. A quotation closed before
    whitespace, punctuation or the end stands on its own and its sentences split as usual.
    Curly quotes and brackets are matched with a stack per kind; straight quotes (" and ') pair
    up with the next one of the same kind. Unmatched marks are ignored.
    """
    spans: list[tuple[int, int]] = []
    stacks: dict[str, list[int]] = {}
    straight_open: dict[str, int] = {}
    for index, char in enumerate(text):
        if char in _PAIRS:
            stacks.setdefault(char, []).append(index)
        elif char in _CLOSER_TO_OPENER:
            stack = stacks.get(_CLOSER_TO_OPENER[char])
            if stack:
                spans.append((stack.pop(), index))
        elif char in _STRAIGHT_QUOTES:
            if char in straight_open:
                spans.append((straight_open.pop(char), index))
            else:
                straight_open[char] = index
    return [(open_, close) for open_, close in spans if _is_embedded(text, close)]


def _is_embedded(text: str, close: int) -> bool:
    """Whether the mark closing at `close` is followed by a word, not a space or punctuation."""
    after = text[close + 1 : close + 2]
    return bool(after) and not after.isspace() and after not in _TERMINATORS + _CLOSERS
