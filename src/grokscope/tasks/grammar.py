"""Question formation on a generated English-like grammar (McCoy et al. 2020; Murty et al. 2023).

A small probabilistic grammar, seeded, writes declaratives:

    S    -> NP[n] Aux[n] VP .          NP[n] -> Det N[n] | Det N[n] PP | Det N[n] RC[n]
    PP   -> Prep NP[m]                  RC[n] -> rel Aux[n] Vi | rel Aux[n] Vt NP[m]
    VP   -> Vi | Vt NP[m]               (the auxiliary agrees in number n with its noun)

The question moves the *main* auxiliary to the front: "the newt who can giggle does swim ." ->
"does the newt who can giggle swim ?". The linear rule (move the first auxiliary) gives the same
question unless the subject holds an auxiliary (a relative clause on the subject, or inside a PP
on it): then only the hierarchical rule is right. Examples are decoder-only sequences
`declarative TASK output <eos>`, TASK = `decl` (copy) or `quest` (question), with the loss on the
output (`loss_on='output'`) or on the whole sequence (`'sequence'`, a language model as Murty et al.
train it: predicting the main auxiliary's agreement in the declarative needs the subject).

Splits: `train` (copies of any sentence, and questions only of sentences where the two rules
agree), `test_id` (held-out questions where they agree) and `test_gen` (questions of sentences
with an auxiliary in the subject whose two rules move different auxiliary *words*, so the first
word alone says which rule the model follows); `test_gen` dates generalization. Measures:
`{split}_first_acc` (the first output word, the moved auxiliary, right under teacher forcing,
which equals greedy decoding's first word) for the question splits, `test_gen_first_linear_acc`
(the share of test_gen whose first word is the linear rule's auxiliary) and `test_gen_linear_acc`
(the share whose greedy output is the *linear* rule's whole question). `build_transduction` is the
shared machinery; tense inflection (tasks/tense.py) is the second task on it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from grokscope.errors import ConfigError
from grokscope.models.layers import eval_mode
from grokscope.tasks.task import Split, Task, check_generated

__all__ = ["GrammarOptions", "GrammarTask", "build_question_formation", "build_transduction",
           "check_transduction", "hierarchical_question", "linear_question", "main_auxiliary", "parses",
           "validate_question_formation"]

DETS = ("the", "some", "my", "your", "our", "her")
NOUNS = ("newt", "yak", "peacock", "orangutan", "unicorn", "raven", "salamander", "vulture", "zebra",
         "walrus")
AUX = {"sg": ("does", "doesn't"), "pl": ("do", "don't"), "any": ("can", "can't", "will", "won't")}
VI = ("giggle", "smile", "sleep", "swim", "wait", "move", "read", "eat")
VT = ("entertain", "amuse", "confuse", "admire", "accept", "remember", "comfort")
PREPS = ("around", "near", "with", "upon", "by", "behind", "above", "below")
RELS = ("who", "that")
ALL_AUX = AUX["sg"] + AUX["pl"] + AUX["any"]
PLURAL = {n: ("walruses" if n == "walrus" else n + "s") for n in NOUNS}
SPECIAL = ("decl", "quest", "<eos>", "<pad>")
VOCAB = (*DETS, *NOUNS, *PLURAL.values(), *ALL_AUX, *VI, *VT, *PREPS, *RELS, ".", "?", *SPECIAL)


@dataclass(frozen=True)
class GrammarOptions:
    n_train: int = 20_000
    """Training examples: half copies (decl), half questions whose two rules agree (quest)."""
    n_test: int = 500
    """Examples in each of test_id and test_gen."""
    rc_prob: float = 0.3
    """Probability that a noun phrase takes a relative clause (at depth 0)."""
    pp_prob: float = 0.2
    """Probability that a noun phrase takes a prepositional phrase (at depth 0)."""
    max_depth: int = 2
    """Deepest nesting of noun phrases inside noun phrases."""
    loss_on: str = "output"
    """'output': the training loss covers the output tokens; 'sequence': every token of the training
    sequences, the declarative included (a language model, as Murty et al. 2023 train)."""
    score: str = "key"
    """What the test splits' accuracy (and loss) score: 'key', the key word (the question's first
    word, the moved auxiliary; the main verb for tense), as Murty et al. 2023 score them, so that
    events and phases date the rule the model follows; 'sequence', the whole output's exact match.
    Both are logged either way ({split}_first_acc / _verb_acc and {split}_seq_acc)."""


# ------------------------------------------------------------------------------ generation


def _aux(rng: random.Random, number: str) -> str:
    return rng.choice(AUX[number] + AUX["any"])


def _np(rng: random.Random, o: GrammarOptions, depth: int) -> list[str]:
    number = rng.choice(("sg", "pl"))
    noun = rng.choice(NOUNS)
    words = [rng.choice(DETS), noun if number == "sg" else PLURAL[noun]]
    decay = 0.5 ** depth
    if depth < o.max_depth:
        r = rng.random()
        if r < o.rc_prob * decay:
            words += [rng.choice(RELS), _aux(rng, number)]
            words += [rng.choice(VI)] if rng.random() < 0.5 else [rng.choice(VT), *_np(rng, o, depth + 1)]
        elif r < (o.rc_prob + o.pp_prob) * decay:
            words += [rng.choice(PREPS), *_np(rng, o, depth + 1)]
    return words


def declarative(rng: random.Random, o: GrammarOptions) -> tuple[list[str], int]:
    """(words, index of the main auxiliary) of one generated declarative."""
    subject = _np(rng, o, 0)
    number = "pl" if subject[1] in PLURAL.values() else "sg"
    # the main verb's object is not inside a noun phrase: depth 0, so it can hold a relative clause,
    # whose auxiliary makes "move the last auxiliary" wrong on training questions (McCoy et al. 2020)
    vp = [rng.choice(VI)] if rng.random() < 0.5 else [rng.choice(VT), *_np(rng, o, 0)]
    return [*subject, _aux(rng, number), *vp, "."], len(subject)


def hierarchical_question(words: list[str], main: int) -> list[str]:
    """Move the main auxiliary (at index `main`) to the front; '.' -> '?'."""
    return [words[main], *words[:main], *words[main + 1:-1], "?"]


def linear_question(words: list[str]) -> list[str]:
    """Move the first auxiliary of the sentence to the front; '.' -> '?'."""
    first = next(i for i, w in enumerate(words) if w in ALL_AUX)
    return hierarchical_question(words, first)


# ------------------------------------------------------------------------------ recognizer


def _parse_np(w: list[str], i: int, depth: int = 0) -> list[tuple[int, str]]:
    """Every (end, number) of a noun phrase starting at w[i]."""
    if i + 1 >= len(w) or w[i] not in DETS:
        return []
    noun = w[i + 1]
    number = "sg" if noun in NOUNS else "pl" if noun in PLURAL.values() else None
    if number is None:
        return []
    ends = [(i + 2, number)]
    j = i + 2
    if j < len(w) and w[j] in PREPS:
        ends += [(e, number) for e, _ in _parse_np(w, j + 1, depth + 1)]
    if j + 2 < len(w) and w[j] in RELS and w[j + 1] in AUX[number] + AUX["any"]:
        if w[j + 2] in VI:
            ends.append((j + 3, number))
        if w[j + 2] in VT:
            ends += [(e, number) for e, _ in _parse_np(w, j + 3, depth + 1)]
    return ends


def main_auxiliary(words: list[str]) -> int | None:
    """The index of the main auxiliary of a declarative of the grammar (agreement included), found
    by parsing it; None when `words` does not parse."""
    for end, number in _parse_np(words, 0):
        if end < len(words) and words[end] in AUX[number] + AUX["any"]:
            rest = end + 1
            if rest < len(words) and words[rest] in VI and words[rest + 1:] == ["."]:
                return end
            if rest < len(words) and words[rest] in VT:
                if any(e == len(words) - 1 and words[-1] == "." for e, _ in _parse_np(words, rest + 1)):
                    return end
    return None


def parses(words: list[str]) -> bool:
    """Whether `words` is a declarative of the grammar (agreement included)."""
    return main_auxiliary(words) is not None


# ------------------------------------------------------------------------------ the task


def check_transduction(cfg, o) -> None:
    """The checks question formation and tense inflection share."""
    check_generated(cfg, o.n_train, o.n_test)
    for name in ("rc_prob", "pp_prob"):
        if not 0 <= getattr(o, name) <= 1:
            raise ConfigError(f"task.options.{name}: must be in [0, 1], got {getattr(o, name)!r}")
    if o.rc_prob + o.pp_prob > 1 or o.rc_prob + o.pp_prob == 0:
        raise ConfigError(f"task.options.rc_prob: must give 0 < rc_prob + pp_prob <= 1, got rc_prob "
                          f"{o.rc_prob!r} and pp_prob {o.pp_prob!r}")
    if not 1 <= o.max_depth <= 4:
        raise ConfigError(f"task.options.max_depth: must be an integer in 1..4, got {o.max_depth!r}")
    if o.loss_on not in ("output", "sequence"):
        raise ConfigError(f"task.options.loss_on: must be 'output' or 'sequence', got {o.loss_on!r}")
    if o.score not in ("key", "sequence"):
        raise ConfigError(f"task.options.score: must be 'key' or 'sequence', got {o.score!r}")


def validate_question_formation(cfg) -> None:
    o = GrammarOptions(**cfg.task.options)
    check_transduction(cfg, o)
    if o.rc_prob == 0:
        raise ConfigError("task.options.rc_prob: must be > 0 (only a relative clause on the subject tells "
                          "the two rules apart), got 0")


@dataclass(frozen=True, eq=False, kw_only=True)
class GrammarTask(Task):
    """A transduction on a generated grammar: sequence splits plus key-word and linear-rule measures."""

    key: str = "first"
    """Name of the word that tells the two rules apart: 'first' (the moved auxiliary) or 'verb'."""
    key_pos: dict = field(default_factory=dict)
    """{split: (n,) long input position whose prediction is the key word} for the transformed splits."""
    full: dict = field(default_factory=dict)
    """{split: the test split scored on its whole output} (the splits themselves may score the key word)."""
    linear: Split | None = None
    """test_gen with the linear rule's outputs as targets."""

    @property
    def measure_cost(self) -> float:
        return float(sum(len(s) for s in self.full.values()) + len(self.linear))

    def measures(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        from grokscope.training.losses import per_example_correct

        out: dict[str, float] = {}
        with eval_mode(model), torch.no_grad():
            for name, pos in self.key_pos.items():
                s = self.full[name]
                logits = model(s.inputs.to(device)).cpu()  # (n, T, vocab)
                rows = torch.arange(len(s))
                guess = logits[rows, pos].argmax(-1)
                out[f"{name}_{self.key}_acc"] = float((guess == s.targets[rows, pos]).double().mean())
                out[f"{name}_seq_acc"] = float(per_example_correct(logits, s.targets, "tokens",
                                                                   s.mask).double().mean())
                if name == "test_gen":
                    hit = guess == self.linear.targets[rows, pos]
                    out[f"test_gen_{self.key}_linear_acc"] = float(hit.double().mean())
            lin = self.linear
            logits = model(lin.inputs.to(device)).cpu()
            out["test_gen_linear_acc"] = float(per_example_correct(logits, lin.targets, "tokens",
                                                                   lin.mask).double().mean())
        return out


def _encode(rows: list[list[str]], prompt_lens: list[int], length: int, vocab: tuple[str, ...],
            whole: bool = False) -> Split:
    """Sequences -> Split(inputs (n, T-1), next tokens (n, T-1), mask on the output's predictions);
    `whole` adds a loss mask on every prediction of the sequence (language modelling)."""
    ids = {w: i for i, w in enumerate(vocab)}
    seq = torch.full((len(rows), length), ids["<pad>"], dtype=torch.long)
    mask = torch.zeros(len(rows), length - 1, dtype=torch.bool)
    loss_mask = torch.zeros(len(rows), length - 1, dtype=torch.bool) if whole else None
    for r, (words, p) in enumerate(zip(rows, prompt_lens)):
        seq[r, :len(words)] = torch.tensor([ids[w] for w in words])
        mask[r, p - 1:len(words) - 1] = True  # predictions of the words after TASK, <eos> included
        if whole:
            loss_mask[r, :len(words) - 1] = True
    return Split(seq[:, :-1], seq[:, 1:], mask, loss_mask)


def build_transduction(cfg, o, sample, *, kind: str, vocab: tuple[str, ...], copy: str, transform: str,
                       key: str) -> GrammarTask:
    """Generate, split and encode a transduction whose hierarchical and linear rules agree on some
    sentences and not on others. `sample(rng)` -> (words, hierarchical output, linear output, index of
    the key word in the output). Sentences where the rules disagree count only when they disagree on
    the key word, so the key word's accuracy tells the rules apart."""
    rng = random.Random(cfg.effective_split_seed)
    agree: dict[tuple, tuple] = {}
    differ: dict[tuple, tuple] = {}
    want = o.n_train + 2 * o.n_test
    tries = 0
    while (len(agree) < want or len(differ) < o.n_test) and tries < 50 * want:
        tries += 1
        words, hier, lin, k = sample(rng)
        if hier == lin:
            bucket = agree
        elif hier[k] != lin[k]:
            bucket = differ
        else:
            continue
        if len(bucket) < want:
            bucket.setdefault(tuple(words), (hier, lin, k))
    if len(agree) < want or len(differ) < o.n_test:
        raise ConfigError(f"task.options.n_train: the grammar gave only {len(agree)} + {len(differ)} "
                          f"distinct sentences for {want} + {o.n_test}; ask for fewer or raise rc_prob / "
                          "max_depth")
    agree_items = list(agree.items())
    rng.shuffle(agree_items)
    test_id = agree_items[: o.n_test]
    pool = agree_items[o.n_test:]
    n_transform = o.n_train // 2
    train_rows = [(list(w), [transform], list(h)) for w, (h, _, _) in pool[:n_transform]]
    copies = list(agree_items[o.n_test:]) + list(differ.items())
    rng.shuffle(copies)
    train_rows += [(list(w), [copy], list(w)) for w, _ in copies[: o.n_train - n_transform]]
    rng.shuffle(train_rows)
    id_rows = [(list(w), [transform], list(h)) for w, (h, _, _) in test_id]
    gen_items = list(differ.items())[: o.n_test]
    gen_rows = [(list(w), [transform], list(h)) for w, (h, _, _) in gen_items]
    lin_rows = [(list(w), [transform], list(lin)) for w, (_, lin, _) in gen_items]
    everything = train_rows + id_rows + gen_rows
    length = max(len(a) + 1 + len(b) + 1 for a, _, b in everything)

    def split(rows, whole=False):
        return _encode([a + t + b + ["<eos>"] for a, t, b in rows], [len(a) + 1 for a, _, _ in rows], length,
                       vocab, whole)

    full = {"test_id": split(id_rows), "test_gen": split(gen_rows)}
    # the input position whose prediction is the key word: TASK sits at len(a), predicting output[0]
    key_pos = {"test_id": torch.tensor([len(w) + k for w, (_, _, k) in test_id]),
               "test_gen": torch.tensor([len(w) + k for w, (_, _, k) in gen_items])}
    tests = dict(full)
    if o.score == "key":  # the splits' accuracy and loss are the key word's
        for name, s in full.items():
            only = torch.zeros_like(s.mask)
            only[torch.arange(len(s)), key_pos[name]] = True
            tests[name] = Split(s.inputs, s.targets, only)
    splits = {"train": split(train_rows, o.loss_on == "sequence"), **tests}
    meta = {"kind": kind, "n_train": len(train_rows), "n_test": o.n_test, "vocab": list(vocab),
            "train_transformed": n_transform, "max_len": length, "loss_on": o.loss_on, "score": o.score}
    return GrammarTask(kind=kind, splits=splits, input_kind="tokens", input_shape=(length - 1,),
                       n_classes=len(vocab), vocab_size=len(vocab), output="tokens",
                       generalization_split="test_gen", meta=meta,
                       measure_names=(f"test_id_{key}_acc", "test_id_seq_acc", f"test_gen_{key}_acc",
                                      "test_gen_seq_acc", f"test_gen_{key}_linear_acc",
                                      "test_gen_linear_acc"),
                       key=key, key_pos=key_pos, full=full, linear=split(lin_rows))


def _sample_question(o: GrammarOptions):
    def sample(rng):
        words, main = declarative(rng, o)
        return words, hierarchical_question(words, main), linear_question(words), 0
    return sample


def build_question_formation(cfg) -> GrammarTask:
    """Generate, split and encode (see the module docstring)."""
    o = GrammarOptions(**cfg.task.options)
    return build_transduction(cfg, o, _sample_question(o), kind="question_formation", vocab=VOCAB,
                              copy="decl", transform="quest", key="first")
