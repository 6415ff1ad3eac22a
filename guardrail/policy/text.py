"""Prompt normalisation and multi-term matching.

A prompt is folded to what a reader would see: Unicode NFKC, case folding, confusable homoglyphs
mapped to Latin (Unicode's confusables data, via confusable-homoglyphs), the Latin letter forms NFKC
leaves alone (small capitals, modifier, turned, stroked, enclosed letters: read from the Unicode
character names), zero-width and combining marks removed, leetspeak mapped to letters, and letters
spaced or punctuated apart ("g.o.r.e") joined again. Terms are normalised the same way and matched
as whole words with one Aho-Corasick automaton (pyahocorasick), so "classic" never matches "ass" and
a policy of thousands of terms costs one pass over the prompt.

A term also matches its regular inflections (-s, -es, -ies, -ing, -ings) unless it is exact; a term
of several words also matches written as one token ("xyzw", "XyZw", "#xyzw") and inside a CamelCase
compound ("#XyZwFan"); a single word never matches inside another word. A match inside one of the
term's exception phrases (`unless`) does not fire, and is reported as suppressed.
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
_SPACED_RUN = re.compile(r"(?<![^ ])[^ ](?: [^ ](?![^ ]))+")
"""Two or more one-character words in a row, in words joined by single spaces."""


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


_LETTER_NAME = re.compile(
    r"^(?:LATIN|MODIFIER|MATHEMATICAL|CIRCLED|PARENTHESIZED|SQUARED|NEGATIVE|REGIONAL|FULLWIDTH)\b.*?"
    r"\b(?:LETTER|CAPITAL|SMALL)(?: [A-Z]+)*? ([A-Z])(?: WITH .*)?$"
)
_LAST_PLANE = 0x20000


@functools.cache
def _letter_forms() -> dict[int, str]:
    """Every Latin letter form whose Unicode name ends in its base letter, mapped to that letter:
    'LATIN LETTER SMALL CAPITAL G' -> g, 'LATIN SMALL LETTER TURNED A' -> a, 'NEGATIVE CIRCLED LATIN
    CAPITAL LETTER G' -> g, 'LATIN SMALL LETTER O WITH STROKE' -> o. Built once from the character
    database Python ships (about 2,000 characters, 80 ms)."""
    table: dict[int, str] = {}
    for code in range(0x80, _LAST_PLANE):
        match = _LETTER_NAME.match(unicodedata.name(chr(code), ""))
        if match:
            table[code] = match.group(1).lower()
    return table


@functools.cache
def fold_table() -> dict[int, str]:
    """Non-ASCII characters -> the ASCII letter or digit a reader takes them for (confusables first)."""
    return {**_letter_forms(), **_confusables()}


def fold(text: str) -> str:
    """The light view of a text: NFKC and case folding only (what regexes also see)."""
    return unicodedata.normalize("NFKC", text).casefold()


def tokens(text: str) -> list[str]:
    """The normalised words of a text."""
    if text.isascii():  # no homoglyphs, marks or zero-width characters to remove: skip the slow steps
        text = text.lower()
    else:
        text = fold(text).translate(fold_table())
        decomposed = unicodedata.normalize("NFD", text)
        text = "".join(c for c in decomposed if unicodedata.category(c) not in _DROPPED_CATEGORIES)
    if "!" in text or "|" in text:
        text = _LEET_BEFORE_WORD.sub(lambda m: "i" if m.group() == "!" else "l", text)
    return _TOKEN.findall(text.translate(_LEET))  # the letters _LEET yields are none of its keys


def spaced_runs(words: list[str]) -> list[str]:
    """Runs of two or more one-letter words, joined ("a g o r e" -> "agore").

    Any substring of a run is a sequence of whole one-letter words, so terms may match anywhere in it.
    """
    return [run.replace(" ", "") for run in _SPACED_RUN.findall(" ".join(words))]


def views(text: str) -> tuple[str, list[str]]:
    """The word view of a text (normalised words, space-padded for whole-word matching) and its spaced runs."""
    words = tokens(text)
    return " " + " ".join(words) + " ", spaced_runs(words)


def normalize(text: str) -> str:
    """The normalised form of a term or prompt, as shown to policy authors."""
    return " ".join(tokens(text))


@dataclass(frozen=True)
class Term(Generic[T]):
    """A term to find, what it belongs to (a rule), whether its inflections count, and the phrases in
    which a match does not count."""

    text: str
    value: T
    inflect: bool = True
    unless: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextHit(Generic[T]):
    """One match: what it belongs to, and the normalised text that matched."""

    value: T
    pattern: str
    matched: str
    kind: str = "term"
    """term or regex."""
    suppressed_by: str | None = None
    """The exception phrase the match lies inside (then it does not fire)."""


def inflections(key: str) -> list[str]:
    """A normalised term and its regular inflections, on its last word: plural -s / -es / -ies, and
    -ing / -ings (dropping a final e, doubling a final consonant after a short vowel)."""
    head, _, last = key.rpartition(" ")
    prefix = f"{head} " if head else ""
    if len(last) < 2 or not last.isalpha():
        return [key]
    forms = {last, last + "s", last + "es", last + "ing", last + "ings"}
    vowels = "aeiou"
    if last.endswith("y") and last[-2] not in vowels:
        forms.add(last[:-1] + "ies")
    if last.endswith("e") and not last.endswith("ee"):
        forms |= {last[:-1] + "ing", last[:-1] + "ings"}
    if len(last) >= 3 and last[-1] not in vowels + "wxy" and last[-2] in vowels and last[-3] not in vowels:
        forms |= {last + last[-1] + "ing", last + last[-1] + "ings"}
    return [prefix + form for form in sorted(forms)]


_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_CAMEL_HINT = re.compile(r"[a-z][A-Z]|[A-Z][A-Z][a-z]")
_CAMEL_WORD = re.compile(r"\S*(?:[a-z][A-Z]|[A-Z][A-Z][a-z])\S*")
_HANDLE = re.compile(r"(?<![\w@])@([^\W\d_]\S*)")
"""A handle: '@' at the start of a word, before a letter; the word without its '@'."""


class TextMatcher(Generic[T]):
    """Whole-word terms and regular expressions, compiled once, matched against many texts.

    Regexes see the light view (NFKC, case folded) and the normalised views, each as its own line
    (they are compiled multi-line, so ^ and $ match at the start and end of each view). Regexes are
    RE2 (guardrail.policy.regex): linear time, whatever the pattern and the text.
    """

    def __init__(self, terms: Iterable[Term[T] | tuple[str, T]] = (), regexes: Iterable[tuple[str, T]] = ()) -> None:
        words: dict[str, list[Term[T]]] = {}
        letters: dict[str, list[Term[T]]] = {}
        compounds: dict[str, list[Term[T]]] = {}
        exceptions: set[str] = set()
        for item in terms:
            term = item if isinstance(item, Term) else Term(item[0], item[1])
            key = normalize(term.text)
            if not key:
                continue
            phrases = tuple(p for p in (normalize(u) for u in term.unless) if p)
            term = Term(term.text, term.value, term.inflect, phrases)
            exceptions.update(phrases)
            for form in inflections(key) if term.inflect else [key]:
                words.setdefault(f" {form} ", []).append(term)
                letters.setdefault(form.replace(" ", ""), []).append(term)
                if " " in form:  # several words: also as one token, and inside a CamelCase compound
                    words.setdefault(f" {form.replace(' ', '')} ", []).append(term)
                    compounds.setdefault(f" {form} ", []).append(term)
        self._words = _automaton(words)
        self._letters = _automaton(letters)
        self._compounds = _automaton(compounds)
        # an exception phrase covers its own inflections too ("nude lip" covers "nude lips")
        self._exceptions = _automaton({f" {form} ": [p] for p in exceptions for form in inflections(p)})
        self._regexes = [(compile_linear(p), p, v) for p, v in regexes]
        self._prefilter = _prefilter([p for p, _ in regexes])

    def find(self, text: str) -> list[TextHit[T]]:
        """Every term and regex that matches the text (each pattern once). A term whose every match
        lies inside one of its exception phrases is returned with `suppressed_by` set."""
        found: dict[tuple[str, int], TextHit[T]] = {}
        words, runs = views(text)
        if self._words is not None:
            self._read(found, text, words, runs)
            if "@" in text:  # "@name" is a handle to a reader, leetspeak for "a" to the word view
                handles = " ".join(_HANDLE.findall(text))
                if handles:
                    self._read(found, handles, *views(handles))
        hits = list(found.values())
        if self._regexes:
            # All views in one text, one per line ("." does not cross lines); most texts match no
            # regex, which one search of the combined prefilter shows.
            views_text = "\n".join([fold(text), words, " ".join(runs)])
            if self._prefilter is not None and not self._prefilter.search(views_text):
                return hits
            for regex, pattern, value in self._regexes:
                match = regex.search(views_text)
                if match:
                    hits.append(TextHit(value, pattern, match.group().strip(), "regex"))
        return hits

    def _read(self, found: dict[tuple[str, int], TextHit[T]], text: str, words: str, runs: list[str]) -> None:
        """Terms in the word view and in spaced letters; terms of several words in CamelCase compounds."""
        self._collect(found, self._words, words)
        for run in runs:
            for _end, (key, terms) in self._letters.iter(run):
                self._record(found, terms, key, None)
        if self._compounds is not None and not text.islower() and _CAMEL_HINT.search(text):
            # only the CamelCase words are read again, split at their capitals
            camel, _ = views(" ".join(_CAMEL.sub(" ", word) for word in _CAMEL_WORD.findall(text)))
            self._collect(found, self._compounds, camel)

    def _collect(self, found: dict[tuple[str, int], TextHit[T]], automaton: Any, view: str) -> None:
        hits = list(automaton.iter(view))
        spans: list[tuple[int, int, str]] = []
        if hits and self._exceptions is not None:  # most texts match no term: then no phrase is looked for
            spans = [(end - len(key) + 1, end, phrase) for end, (key, (phrase,)) in self._exceptions.iter(view)]
        for end, (key, terms) in hits:
            start = end - len(key) + 1
            inside = [phrase for s, e, phrase in spans if s <= start and end <= e]
            self._record(found, terms, key, inside)

    @staticmethod
    def _record(
        found: dict[tuple[str, int], TextHit[T]], terms: list[Term[T]], key: str, inside: list[str] | None
    ) -> None:
        for term in terms:
            slot = (term.text, id(term.value))
            suppressor = next((p for p in inside or () if p in term.unless), None)
            if slot in found and (suppressor is not None or found[slot].suppressed_by is None):
                continue  # an unsuppressed match stands; a suppressed one gives way to any other
            found[slot] = TextHit(term.value, term.text, key.strip(), "term", suppressor)


def _prefilter(patterns: list[str]) -> Any:
    """One alternation of all patterns: it matches a text exactly when one of them does (RE2 has no
    backreferences, so combining shifts no group a pattern refers to). None when there is one."""
    if len(patterns) < 2:
        return None
    try:
        return compile_linear("|".join(f"(?:{p})" for p in patterns))
    except ValueError:  # each compiles alone; together they may pass the memory bound
        return None


def _automaton(entries: dict[str, list[Any]]) -> Any:
    import ahocorasick

    if not entries:
        return None
    automaton = ahocorasick.Automaton()
    for key, values in entries.items():
        automaton.add_word(key, (key, tuple(values)))
    automaton.make_automaton()
    return automaton
