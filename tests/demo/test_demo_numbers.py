"""The demo task's number words, against values written by hand, and the demo corpus."""

from __future__ import annotations

import pytest

from transformer.data.corpus import read_lines
from transformer.demo.numbers import english_words, german_words, make_demo_corpus

# (number, English, German): German in standard orthography, written out by hand.
KNOWN = [
    (0, "zero", "null"),
    (1, "one", "eins"),
    (7, "seven", "sieben"),
    (11, "eleven", "elf"),
    (12, "twelve", "zwölf"),
    (13, "thirteen", "dreizehn"),
    (16, "sixteen", "sechzehn"),
    (17, "seventeen", "siebzehn"),
    (20, "twenty", "zwanzig"),
    (21, "twenty-one", "einundzwanzig"),
    (30, "thirty", "dreißig"),
    (31, "thirty-one", "einunddreißig"),
    (60, "sixty", "sechzig"),
    (66, "sixty-six", "sechsundsechzig"),
    (70, "seventy", "siebzig"),
    (77, "seventy-seven", "siebenundsiebzig"),
    (99, "ninety-nine", "neunundneunzig"),
    (100, "one hundred", "einhundert"),
    (101, "one hundred one", "einhunderteins"),
    (110, "one hundred ten", "einhundertzehn"),
    (116, "one hundred sixteen", "einhundertsechzehn"),
    (121, "one hundred twenty-one", "einhunderteinundzwanzig"),
    (200, "two hundred", "zweihundert"),
    (342, "three hundred forty-two", "dreihundertzweiundvierzig"),
    (999, "nine hundred ninety-nine", "neunhundertneunundneunzig"),
    (1000, "one thousand", "eintausend"),
    (1001, "one thousand one", "eintausendeins"),
    (1100, "one thousand one hundred", "eintausendeinhundert"),
    (2021, "two thousand twenty-one", "zweitausendeinundzwanzig"),
    (12345, "twelve thousand three hundred forty-five", "zwölftausenddreihundertfünfundvierzig"),
    (17017, "seventeen thousand seventeen", "siebzehntausendsiebzehn"),
    (21000, "twenty-one thousand", "einundzwanzigtausend"),
    (101001, "one hundred one thousand one", "einhunderteintausendeins"),
    (
        999999,
        "nine hundred ninety-nine thousand nine hundred ninety-nine",
        "neunhundertneunundneunzigtausendneunhundertneunundneunzig",
    ),
]


# fmt: off
VALUES = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
# fmt: on


def parse_english(text: str) -> int:
    """An independent reader of the English style: "twelve thousand three hundred forty-five" -> 12345."""
    total = current = 0
    for word in text.split():
        if word == "thousand":
            total, current = total + current * 1000, 0
        elif word == "hundred":
            current *= 100
        else:
            current += sum(VALUES[part] for part in word.split("-"))
    return total + current


@pytest.mark.parametrize(("n", "english", "german"), KNOWN)
def test_number_words_match_hand_written_values(n: int, english: str, german: str) -> None:
    assert english_words(n) == english
    assert german_words(n) == german


@pytest.mark.parametrize("bad", [-1, 1_000_000, 2.0, True])
def test_number_words_reject_numbers_out_of_range(bad: object) -> None:
    with pytest.raises(ValueError, match="0..999999"):
        english_words(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0..999999"):
        german_words(bad)  # type: ignore[arg-type]


def test_number_words_read_back_and_never_collide() -> None:
    """English reads back to the number; German words are all distinct (a colliding rule would show)."""
    numbers = [*range(2000), *range(2000, 1_000_000, 997)]
    assert all(parse_english(english_words(n)) == n for n in numbers)
    assert len({german_words(n) for n in numbers}) == len(numbers)


def test_demo_corpus_splits_are_disjoint_aligned_and_deterministic(tmp_path) -> None:
    files = make_demo_corpus(tmp_path / "a", n_train=300, n_valid=40, n_test=30, max_number=9999, seed=3)
    again = make_demo_corpus(tmp_path / "b", n_train=300, n_valid=40, n_test=30, max_number=9999, seed=3)
    other = make_demo_corpus(tmp_path / "c", n_train=300, n_valid=40, n_test=30, max_number=9999, seed=4)
    assert set(files) == {"train", "valid", "test"}
    numbers = {}
    for split, (en, de) in files.items():
        assert (en.name, de.name) == (f"{split}.en", f"{split}.de")
        en_lines, de_lines = read_lines(en), read_lines(de)
        numbers[split] = [parse_english(line) for line in en_lines]
        assert de_lines == [german_words(n) for n in numbers[split]]  # aligned line by line
        assert len(set(numbers[split])) == len(numbers[split])
        assert en.read_bytes() == again[split][0].read_bytes()
        assert de.read_bytes() == again[split][1].read_bytes()
    assert [len(numbers[s]) for s in ("train", "valid", "test")] == [300, 40, 30]
    train, valid, test = (set(numbers[s]) for s in ("train", "valid", "test"))
    assert not train & valid and not train & test and not valid & test
    assert set(range(20)) | {30, 90, 100, 1000} <= train  # the basic words are always seen in training
    assert read_lines(other["valid"][0]) != read_lines(files["valid"][0])


def test_demo_corpus_covers_digit_counts_evenly(tmp_path) -> None:
    files = make_demo_corpus(tmp_path, n_train=600, n_valid=0, n_test=0, seed=0)
    assert set(files) == {"train"}  # empty splits are not written
    digits = [len(str(parse_english(line))) for line in read_lines(files["train"][0])]
    for d in range(2, 7):  # ~1/6 each (1-digit numbers are only 10)
        assert digits.count(d) > 60


def test_demo_corpus_rejects_impossible_requests(tmp_path) -> None:
    with pytest.raises(ValueError, match="distinct numbers"):
        make_demo_corpus(tmp_path, n_train=50, n_valid=40, n_test=20, max_number=99)
    with pytest.raises(ValueError):
        make_demo_corpus(tmp_path, n_train=0)
    files = make_demo_corpus(tmp_path, n_train=60, n_valid=20, n_test=20, max_number=99)  # all 100 numbers
    seen = [parse_english(line) for split in files.values() for line in read_lines(split[0])]
    assert sorted(seen) == list(range(100))
