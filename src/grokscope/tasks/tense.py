"""Tense inflection on a generated English-like grammar (McCoy et al. 2020; Murty et al. 2023).

The grammar of question formation (tasks/grammar.py) without auxiliaries: every verb is inflected.

    S     -> NP[n] VP[n] .             NP[n] -> Det N[n] | Det N[n] PP | Det N[n] RC[n]
    VP[n] -> Vi[n] | Vt[n] NP[m]        RC[n] -> rel Vi[n] | rel Vt[n] NP[m]     PP -> Prep NP[m]

The input is a sentence in the past tense (no agreement is visible: "my newt near the yaks
giggled ."); `present` asks for it in the present, every verb agreeing with its own subject:
"my newt near the yaks giggles .". The linear rule makes each verb agree with the nearest noun
before it; both rules agree on relative-clause verbs (the clause follows its noun), and on the
main verb unless a noun of the other number stands between the subject and it (in a PP or a
relative clause on the subject): then only the hierarchical rule is right. Examples are
`past-sentence TASK output <eos>` with TASK = `past` (copy) or `present`.

Splits, options and measures as for question formation (`build_transduction`), with the main verb
as the key word: `test_id_verb_acc`, `test_gen_verb_acc`, `test_gen_verb_linear_acc` (the main
verb agrees with the nearest noun) and `test_gen_linear_acc`.
"""

from __future__ import annotations

import random

from grokscope.tasks.grammar import (
    DETS,
    NOUNS,
    PLURAL,
    PREPS,
    RELS,
    GrammarOptions,
    GrammarTask,
    build_transduction,
    check_transduction,
)

__all__ = ["TENSE_VOCAB", "build_tense_inflection", "linear_present", "main_verb", "past_sentence",
           "present_sentence", "tense_parses", "validate_tense_inflection"]

VI = ("giggle", "smile", "wait", "move", "laugh", "dance", "yawn", "sneeze")
VT = ("entertain", "amuse", "confuse", "admire", "accept", "remember", "comfort", "visit")


def _past(v: str) -> str:
    return v + "d" if v.endswith("e") else v + "ed"


FORMS = {v: {"past": _past(v), "sg": v + "s", "pl": v} for v in VI + VT}
STEM = {form: v for v, forms in FORMS.items() for form in forms.values()}
TENSE_VOCAB = (*DETS, *NOUNS, *PLURAL.values(), *(f for v in VI + VT for f in FORMS[v].values()), *PREPS,
               *RELS, ".", "past", "present", "<eos>", "<pad>")
SINGULAR = {p: n for n, p in PLURAL.items()}


def _number(word: str) -> str | None:
    return "sg" if word in NOUNS else "pl" if word in SINGULAR else None


# ------------------------------------------------------------------------------ generation


def _verb_phrase(rng, o, object_depth: int, words: list[str], verbs: list[tuple[int, str]],
                 number: str) -> None:
    """Append a past-tense verb (recorded with the number it agrees with) and, if transitive, its object
    (a noun phrase at `object_depth`)."""
    verbs.append((len(words), number))
    if rng.random() < 0.5:
        words.append(FORMS[rng.choice(VI)]["past"])
    else:
        words.append(FORMS[rng.choice(VT)]["past"])
        _np(rng, o, object_depth, words, verbs)


def _np(rng, o, depth: int, words: list[str], verbs: list[tuple[int, str]]) -> str:
    number = rng.choice(("sg", "pl"))
    noun = rng.choice(NOUNS)
    words += [rng.choice(DETS), noun if number == "sg" else PLURAL[noun]]
    decay = 0.5 ** depth
    if depth < o.max_depth:
        r = rng.random()
        if r < o.rc_prob * decay:
            words.append(rng.choice(RELS))
            _verb_phrase(rng, o, depth + 1, words, verbs, number)
        elif r < (o.rc_prob + o.pp_prob) * decay:
            words.append(rng.choice(PREPS))
            _np(rng, o, depth + 1, words, verbs)
    return number


def past_sentence(rng: random.Random, o: GrammarOptions) -> tuple[list[str], list[tuple[int, str]], int]:
    """(words, [(verb index, number of its subject)], index of the main verb) of one past-tense sentence."""
    words: list[str] = []
    verbs: list[tuple[int, str]] = []
    number = _np(rng, o, 0, words, verbs)
    main = len(words)
    _verb_phrase(rng, o, 0, words, verbs, number)  # the main verb's object is not inside a noun phrase
    words.append(".")
    return words, verbs, main


def present_sentence(words: list[str], verbs: list[tuple[int, str]]) -> list[str]:
    """The hierarchical rule: every verb in the present, agreeing with its own subject."""
    out = list(words)
    for i, number in verbs:
        out[i] = FORMS[STEM[words[i]]][number]
    return out


def linear_present(words: list[str]) -> list[str]:
    """The linear rule: every verb in the present, agreeing with the nearest noun before it."""
    out, last = list(words), None
    for i, w in enumerate(words):
        if _number(w):
            last = _number(w)
        elif w in STEM:
            out[i] = FORMS[STEM[w]][last]
    return out


# ------------------------------------------------------------------------------ recognizer


def _verb_ok(word: str, number: str, tense: str) -> str | None:
    """'vi' / 'vt' when `word` is a verb in `tense` ('past' or 'present') agreeing with `number`."""
    stem = STEM.get(word)
    if stem is None or word != FORMS[stem]["past" if tense == "past" else number]:
        return None
    return "vi" if stem in VI else "vt"


def _parse_np(w: list[str], i: int, tense: str) -> list[tuple[int, str]]:
    """Every (end, number) of a noun phrase starting at w[i]."""
    if i + 1 >= len(w) or w[i] not in DETS or _number(w[i + 1]) is None:
        return []
    number = _number(w[i + 1])
    ends = [(i + 2, number)]
    j = i + 2
    if j < len(w) and w[j] in PREPS:
        ends += [(e, number) for e, _ in _parse_np(w, j + 1, tense)]
    if j + 1 < len(w) and w[j] in RELS:
        kind = _verb_ok(w[j + 1], number, tense)
        if kind == "vi":
            ends.append((j + 2, number))
        elif kind == "vt":
            ends += [(e, number) for e, _ in _parse_np(w, j + 2, tense)]
    return ends


def main_verb(words: list[str], tense: str) -> int | None:
    """The index of the main verb of a sentence of the grammar in `tense` ('past', or 'present' with
    agreement), found by parsing it; None when `words` does not parse."""
    for end, number in _parse_np(words, 0, tense):
        kind = _verb_ok(words[end], number, tense) if end < len(words) else None
        if kind == "vi" and words[end + 1:] == ["."]:
            return end
        if kind == "vt" and any(e == len(words) - 1 and words[-1] == "."
                                for e, _ in _parse_np(words, end + 1, tense)):
            return end
    return None


def tense_parses(words: list[str], tense: str) -> bool:
    """Whether `words` is a sentence of the grammar in `tense` (agreement included for the present)."""
    return main_verb(words, tense) is not None


# ------------------------------------------------------------------------------ the task


def validate_tense_inflection(cfg) -> None:
    check_transduction(cfg, GrammarOptions(**cfg.task.options))


def build_tense_inflection(cfg) -> GrammarTask:
    """Generate, split and encode (see the module docstring)."""
    o = GrammarOptions(**cfg.task.options)

    def sample(rng):
        words, verbs, main = past_sentence(rng, o)
        return words, present_sentence(words, verbs), linear_present(words), main

    return build_transduction(cfg, o, sample, kind="tense_inflection", vocab=TENSE_VOCAB, copy="past",
                              transform="present", key="verb")
