"""The built-in demo task: a number written in English words -> the same number in German words.

``"three hundred forty-two"`` -> ``"dreihundertzweiundvierzig"``. Small enough to learn in minutes on
a CPU, yet it needs what translation needs: reordering (German says the units before the tens,
"zweiundvierzig" = two-and-forty), one-to-many and many-to-one alignments, and subword segmentation
of long German compounds. Numbers in the valid and test splits never occur in train, so the scores
measure generalisation, not memory.

Styles (one fixed choice each), for 0 <= n <= 999 999:

* English: American style, no "and"; tens and units joined by a hyphen: 21 "twenty-one",
  342 "three hundred forty-two", 1001 "one thousand one", 12345 "twelve thousand three hundred forty-five".
* German: standard orthography, the whole number one word (numbers below a million are written
  together); hundreds and thousands always with their multiplier: 100 "einhundert", 1000 "eintausend"
  (not "hundert"/"tausend"); "eins" only when it stands at the very end (1 "eins", 101 "einhunderteins",
  1001 "eintausendeins"), otherwise "ein" (21 "einundzwanzig", 1100 "eintausendeinhundert"); "ß" in
  "dreißig".
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_NUMBER = 999_999

# fmt: off
_EN_UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
             "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
             "nineteen")
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_DE_UNITS = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
             "zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn",
             "neunzehn")
_DE_TENS = ("", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig")
# fmt: on


def _check(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"number words are defined for integers 0..{MAX_NUMBER}, got {n!r}")


def _english_below_1000(n: int) -> str:
    """1..999, American style."""
    hundreds, rest = divmod(n, 100)
    words = [f"{_EN_UNITS[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, units = divmod(rest, 10)
        words.append(_EN_TENS[tens] + (f"-{_EN_UNITS[units]}" if units else ""))
    elif rest:
        words.append(_EN_UNITS[rest])
    return " ".join(words)


def english_words(n: int) -> str:
    """``n`` (0..999 999) in English words: ``2021`` -> ``"two thousand twenty-one"``."""
    _check(n)
    if n == 0:
        return "zero"
    thousands, rest = divmod(n, 1000)
    words = [f"{_english_below_1000(thousands)} thousand"] if thousands else []
    if rest:
        words.append(_english_below_1000(rest))
    return " ".join(words)


def _german_below_1000(n: int, final: bool) -> str:
    """1..999 as one German word; ``final``: nothing follows, so a trailing 1 is "eins", else "ein"."""
    hundreds, rest = divmod(n, 100)
    word = f"{_DE_UNITS[hundreds] if hundreds > 1 else 'ein'}hundert" if hundreds else ""
    if rest == 1:
        word += "eins" if final else "ein"
    elif rest < 20:
        word += _DE_UNITS[rest] if rest else ""
    else:
        tens, units = divmod(rest, 10)
        if units:
            word += ("ein" if units == 1 else _DE_UNITS[units]) + "und"
        word += _DE_TENS[tens]
    return word


def german_words(n: int) -> str:
    """``n`` (0..999 999) in German words: ``2021`` -> ``"zweitausendeinundzwanzig"``."""
    _check(n)
    if n == 0:
        return "null"
    thousands, rest = divmod(n, 1000)
    word = f"{_german_below_1000(thousands, final=False)}tausend" if thousands else ""
    if rest:
        word += _german_below_1000(rest, final=True)
    return word


def _basic_numbers(max_number: int) -> list[int]:
    """The numbers whose words every other number is built from: 0..19, the tens, 100 and 1000."""
    basic = [*range(20), *range(20, 100, 10), 100, 1000]
    return [n for n in basic if n <= max_number]


def _sample_numbers(rng: random.Random, k: int, max_number: int, exclude: set[int]) -> list[int]:
    """``k`` distinct numbers in 0..max_number outside ``exclude``, with an even spread over digit counts.

    A number of d digits is as likely as one of d' digits (uniform sampling would give almost only
    6-digit numbers). Falls back to a plain uniform sample when more than half the numbers are needed.
    """
    available = max_number + 1 - len(exclude)
    if k > available:
        raise ValueError(f"asked for {k} distinct numbers but only {available} are available up to {max_number}")
    if 2 * k > available:
        pool = [n for n in range(max_number + 1) if n not in exclude]
        return rng.sample(pool, k)
    strata = []  # (lo, hi, free) for each digit count
    for digits in range(1, len(str(max_number)) + 1):
        lo, hi = (0 if digits == 1 else 10 ** (digits - 1)), min(10**digits - 1, max_number)
        strata.append([lo, hi, hi - lo + 1 - sum(lo <= n <= hi for n in exclude)])
    chosen: list[int] = []
    taken = set(exclude)
    while len(chosen) < k:
        stratum = rng.choice([s for s in strata if s[2] > 0])
        n = rng.randint(stratum[0], stratum[1])
        if n not in taken:
            taken.add(n)
            chosen.append(n)
            stratum[2] -= 1
    return chosen


def make_demo_corpus(
    out_dir: str | os.PathLike[str],
    n_train: int = 20_000,
    n_valid: int = 500,
    n_test: int = 500,
    max_number: int = MAX_NUMBER,
    seed: int = 0,
) -> dict[str, tuple[Path, Path]]:
    """Write the demo corpus: ``{split}.en`` / ``{split}.de`` for split in train, valid, test.

    The splits hold disjoint sets of numbers (valid and test numbers are never seen in training).
    Train always contains the basic numbers (0..19, the tens, 100, 1000) so every word of the task is
    seen alone at least once; the rest are drawn with an even spread over digit counts. A split of
    size 0 is not written. The same arguments always give the same files.

    Returns:
        ``{split: (english file, german file)}``.

    Raises:
        ValueError: more numbers requested than exist up to ``max_number``, or bad sizes.
    """
    if min(n_train, n_valid, n_test) < 0 or n_train == 0:
        raise ValueError(f"need n_train > 0 and n_valid, n_test >= 0, got {n_train}, {n_valid}, {n_test}")
    _check(max_number)
    rng = random.Random(seed)
    basic = _basic_numbers(max_number)[:n_train]
    drawn = _sample_numbers(rng, n_train - len(basic) + n_valid + n_test, max_number, set(basic))
    # The sampler fills the small digit counts first: shuffle, so each digit count is held out in
    # proportion, rather than nearly all two-digit numbers landing in valid and test.
    rng.shuffle(drawn)
    held_out, rest = drawn[: n_valid + n_test], drawn[n_valid + n_test :]
    train = basic + rest
    rng.shuffle(train)
    splits = {"train": train, "valid": held_out[:n_valid], "test": held_out[n_valid:]}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[Path, Path]] = {}
    for split, numbers in splits.items():
        if not numbers:
            continue
        en, de = out / f"{split}.en", out / f"{split}.de"
        en.write_text("".join(english_words(n) + "\n" for n in numbers), encoding="utf-8")
        de.write_text("".join(german_words(n) + "\n" for n in numbers), encoding="utf-8")
        files[split] = (en, de)
    logger.info("demo corpus in %s: %s", out, ", ".join(f"{s} {len(n)}" for s, n in splits.items()))
    return files
