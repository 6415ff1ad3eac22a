"""Prompt normalisation and multi-term matching.

A prompt is folded to what a reader would see: Unicode NFKC, case folding, confusable homoglyphs
mapped to Latin (Unicode's confusables data, via confusable-homoglyphs), zero-width and combining
marks removed, leetspeak mapped to letters, and letters spaced or punctuated apart ("g.o.r.e")
joined again. Terms are normalised the same way and matched as whole words with one Aho-Corasick
automaton (pyahocorasick), so "classic" never matches "ass" and a policy of thousands of terms
costs one pass over the prompt.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, TypeVar

from guardrail.policy.regex import compile_linear

T = TypeVar("T")

_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s"}
)
_LEET_BEFORE_WORD = re.compile(r"[!|](?=\w)")
_TOKEN = re.compile(r"[^\W_]+")
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})


@functools.cache
def _confusables() -> dict[int, str]:
    """Map every non-ASCII homoglyph of an ASCII letter or digit to that letter (lower case)."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    keys = [k for k in data if len(k) == 1 and k.isascii() and k.isalnum()]
    keys.sort(key=lambda k: (not k.islower(), not k.isalpha(), k))  # lower-case letters win conflicts
    table: dict[int, str] = {}
    for key in keys:
        for glyph in data[key]:
            char = glyph["c"]
            if len(char) == 1 and not char.isascii():
                table.setdefault(ord(char), key.lower())
    return table


def fold(text: str) -> str:
    """The light view of a text: NFKC and case folding only (what regexes also see)."""
    return unicodedata.normalize("NFKC", text).casefold()


def tokens(text: str) -> list[str]:
    """The normalised words of a text."""
    if text.isascii():  # no homoglyphs, marks or zero-width characters to remove: skip the slow steps
        text = text.lower()
    else:
        text = fold(text).translate(_confusables())
        decomposed = unicodedata.normalize("NFD", text)
        text = "".join(c for c in decomposed if unicodedata.category(c) not in _DROPPED_CATEGORIES)
    text = _LEET_BEFORE_WORD.sub(lambda m: "i" if m.group() == "!" else "l", text)
    return [t.translate(_LEET) for t in _TOKEN.findall(text.translate(_LEET))]


def spaced_runs(words: list[str]) -> list[str]:
    """Runs of two or more one-letter words, joined ("a g o r e" -> "agore").

    Any substring of a run is a sequence of whole one-letter words, so terms may match anywhere in it.
    """
    runs: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        if len(run) >= 2:
            runs.append("".join(run))
        run = []
    return runs


def views(text: str) -> tuple[str, list[str]]:
    """The word view of a text (normalised words, space-padded for whole-word matching) and its spaced runs."""
    words = tokens(text)
    return " " + " ".join(words) + " ", spaced_runs(words)


def normalize(text: str) -> str:
    """The normalised form of a term or prompt, as shown to policy authors."""
    return " ".join(tokens(text))


@dataclass(frozen=True)
class TextHit(Generic[T]):
    """One match: what it belongs to, and the normalised text that matched."""

    value: T
    pattern: str
    matched: str
    kind: str = "term"
    """term or regex."""


class TextMatcher(Generic[T]):
    """Whole-word terms and regular expressions, compiled once, matched against many texts.

    Regexes see the light view (NFKC, case folded) and the normalised views, each as its own line
    (they are compiled multi-line, so ^ and $ match at the start and end of each view). Regexes are
    RE2 (guardrail.policy.regex): linear time, whatever the pattern and the text.
    """

    def __init__(self, terms: Iterable[tuple[str, T]] = (), regexes: Iterable[tuple[str, T]] = ()) -> None:
        by_key: dict[str, list[tuple[str, T]]] = {}
        for term, value in terms:
            key = normalize(term)
            if key:
                by_key.setdefault(key, []).append((term, value))
        self._words = _automaton({f" {key} ": values for key, values in by_key.items()})
        self._letters = _automaton({key.replace(" ", ""): values for key, values in by_key.items()})
        self._regexes = [(compile_linear(p), p, v) for p, v in regexes]
        self._prefilter = _prefilter([p for p, _ in regexes])

    def find(self, text: str) -> list[TextHit[T]]:
        """Every term and regex that matches the text (each pattern once)."""
        hits: list[TextHit[T]] = []
        seen: set[tuple[str, int]] = set()
        words, runs = views(text)
        if self._words is not None:
            matches = [*self._words.iter(words)]
            for run in runs:
                matches += self._letters.iter(run)
            for _end, (key, values) in matches:
                for term, value in values:
                    if (term, id(value)) not in seen:
                        seen.add((term, id(value)))
                        hits.append(TextHit(value, term, key.strip()))
        if self._regexes:
            # All views in one text, one per line ("." does not cross lines); most texts match no
            # regex, which one search of the combined prefilter shows.
            views_text = "\n".join([fold(text), words, " ".join(runs)])
            if self._prefilter is not None and not self._prefilter.search(views_text):
                return hits
            for regex, pattern, value in self._regexes:
                match = regex.search(views_text)
                if match:
                    hits.append(TextHit(value, pattern, match.group().strip()))
        return hits


def _prefilter(patterns: list[str]) -> Any:
    """One alternation of all patterns: it matches a text exactly when one of them does (RE2 has no
    backreferences, so combining shifts no group a pattern refers to). None when there is one."""
    if len(patterns) < 2:
        return None
    try:
        return compile_linear("|".join(f"(?:{p})" for p in patterns))
    except ValueError:  # each compiles alone; together they may pass the memory bound
        return None


def _automaton(entries: dict[str, list[tuple[str, T]]]) -> Any:
    import ahocorasick

    if not entries:
        return None
    automaton = ahocorasick.Automaton()
    for key, values in entries.items():
        automaton.add_word(key, (key, tuple(values)))
    automaton.make_automaton()
    return automaton
