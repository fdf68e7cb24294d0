"""Omniglot's alphabets and its two standard splits, held as compact facts.

Omniglot (Lake et al., Science 2015) has 1623 characters in 50 alphabets, 20 drawings each. The
official archives number the characters 1..1623 (the ``XXXX`` of ``XXXX_YY.png``): the 30
*background* alphabets hold ids 1..964, the 20 *evaluation* alphabets ids 965..1623, alphabet by
alphabet in the order of :data:`BACKGROUND_ALPHABETS` and :data:`EVALUATION_ALPHABETS`, characters
``character01, character02, ...`` within each.

Two splits of the characters:

``"background-evaluation"``
    Lake et al.'s split: parts ``background`` (964 characters) and ``evaluation`` (659).
``"vinyals"``
    The few-shot split of Vinyals et al. (2016) as used by Prototypical Networks (Snell et al.,
    2017): parts ``train`` / ``val`` / ``test`` with 1028 / 172 / 423 characters, ``trainval`` =
    train then val. It is *almost* whole alphabets: Gurmukhi is cut, ``character01..41`` in
    train and ``character42..45`` in test. :func:`split_class_names` lists the characters in the
    published order (the files ``{part}.txt`` list each of them with ``rot000..rot270``).
"""

from __future__ import annotations

from umeta.errors import UmetaError

#: Background alphabets and their number of characters, in character-id order (ids 1..964).
BACKGROUND_ALPHABETS: tuple[tuple[str, int], ...] = (
    ("Arcadian", 26), ("Armenian", 41), ("Asomtavruli_(Georgian)", 40), ("Balinese", 24),
    ("Bengali", 46), ("Blackfoot_(Canadian_Aboriginal_Syllabics)", 14), ("Braille", 26),
    ("Cyrillic", 33), ("Early_Aramaic", 22), ("Syriac_(Estrangelo)", 23),
    ("Anglo-Saxon_Futhorc", 29), ("Futurama", 26), ("Grantha", 43), ("Greek", 24),
    ("Gujarati", 48), ("Hebrew", 22), ("Japanese_(hiragana)", 52),
    ("Inuktitut_(Canadian_Aboriginal_Syllabics)", 16), ("Malay_(Jawi_-_Arabic)", 40),
    ("Japanese_(katakana)", 47), ("Korean", 40), ("Latin", 26), ("Alphabet_of_the_Magi", 20),
    ("Mkhedruli_(Georgian)", 41), ("Burmese_(Myanmar)", 34), ("N_Ko", 33),
    ("Ojibwe_(Canadian_Aboriginal_Syllabics)", 14), ("Sanskrit", 42), ("Tagalog", 17),
    ("Tifinagh", 55),
)

#: Evaluation alphabets and their number of characters, in character-id order (ids 965..1623).
EVALUATION_ALPHABETS: tuple[tuple[str, int], ...] = (
    ("Angelic", 20), ("Atemayar_Qelisayer", 26), ("Atlantean", 26), ("Aurek-Besh", 26),
    ("Avesta", 26), ("Ge_ez", 26), ("Glagolitic", 45), ("Gurmukhi", 45), ("Kannada", 41),
    ("Keble", 26), ("Malayalam", 47), ("Manipuri", 40), ("Mongolian", 30),
    ("Old_Church_Slavonic_(Cyrillic)", 45), ("Oriya", 46), ("Syriac_(Serto)", 23),
    ("Sylheti", 28), ("Tengwar", 25), ("Tibetan", 42), ("ULOG", 26),
)

#: The official archive (and npz) name of each part of the background-evaluation split.
SOURCE_FILES: dict[str, tuple[tuple[str, int], ...]] = {
    "images_background": BACKGROUND_ALPHABETS,
    "images_evaluation": EVALUATION_ALPHABETS,
}

#: Alphabets of each Vinyals part, in the order of the published split files.
VINYALS_ALPHABETS: dict[str, tuple[str, ...]] = {
    "train": (
        "Angelic", "Grantha", "N_Ko", "Aurek-Besh", "Japanese_(hiragana)",
        "Malay_(Jawi_-_Arabic)", "Asomtavruli_(Georgian)", "Sanskrit",
        "Ojibwe_(Canadian_Aboriginal_Syllabics)", "Korean", "Arcadian", "Greek",
        "Alphabet_of_the_Magi", "Blackfoot_(Canadian_Aboriginal_Syllabics)", "Futurama",
        "Gurmukhi", "Tagalog", "Anglo-Saxon_Futhorc", "Braille", "Cyrillic", "Burmese_(Myanmar)",
        "Avesta", "Gujarati", "Ge_ez", "Syriac_(Estrangelo)", "Atlantean", "Japanese_(katakana)",
        "Balinese", "Atemayar_Qelisayer", "Glagolitic", "Tifinagh", "Latin",
        "Inuktitut_(Canadian_Aboriginal_Syllabics)",
    ),
    "val": ("Hebrew", "Mkhedruli_(Georgian)", "Armenian", "Early_Aramaic", "Bengali"),
    "test": (
        "Gurmukhi", "Kannada", "Keble", "Malayalam", "Manipuri", "Mongolian",
        "Old_Church_Slavonic_(Cyrillic)", "Oriya", "Syriac_(Serto)", "Sylheti", "Tengwar",
        "Tibetan", "ULOG",
    ),
}

#: The one alphabet the Vinyals split cuts: (part, alphabet) -> its character numbers there.
VINYALS_CHARACTER_RANGES: dict[tuple[str, str], range] = {
    ("train", "Gurmukhi"): range(1, 42),
    ("test", "Gurmukhi"): range(42, 46),
}

#: The parts of each split.
SPLITS: dict[str, tuple[str, ...]] = {
    "vinyals": ("train", "val", "test", "trainval"),
    "background-evaluation": ("background", "evaluation"),
}

_NUM_CHARACTERS = dict(BACKGROUND_ALPHABETS + EVALUATION_ALPHABETS)


def _character_names(alphabet: str, numbers: range) -> list[str]:
    return [f"{alphabet}/character{n:02d}" for n in numbers]


def source_class_names(source: str) -> list[str]:
    """Class names ``"Alphabet/characterNN"`` of an official archive, in character-id order.

    Parameters
    ----------
    source : {"images_background", "images_evaluation"}

    Returns
    -------
    list of str
        964 or 659 names; entry ``r`` is row ``r`` of the matching npz array.
    """
    if source not in SOURCE_FILES:
        raise UmetaError(f"unknown Omniglot source {source!r}; use one of {sorted(SOURCE_FILES)}")
    return [name for alphabet, count in SOURCE_FILES[source]
            for name in _character_names(alphabet, range(1, count + 1))]


def check_split(split: str, part: str) -> None:
    """Raise :class:`UmetaError` unless ``part`` is a part of ``split``."""
    if split not in SPLITS:
        raise UmetaError(f"unknown Omniglot split {split!r}; use one of {list(SPLITS)}")
    if part not in SPLITS[split]:
        raise UmetaError(
            f"unknown part {part!r} of the {split!r} split; use one of {list(SPLITS[split])}"
        )


def split_sources(split: str, part: str) -> tuple[str, ...]:
    """The official archives (``images_background`` / ``images_evaluation``) a part draws on."""
    check_split(split, part)
    if split == "background-evaluation":
        return (f"images_{part}",)
    if part == "val":
        return ("images_background",)
    return ("images_background", "images_evaluation")


def split_class_names(split: str, part: str) -> list[str]:
    """Class names ``"Alphabet/characterNN"`` of a split's part, in the published order.

    Parameters
    ----------
    split : {"vinyals", "background-evaluation"}
    part : str
        ``train``, ``val``, ``test`` or ``trainval`` for ``vinyals`` (1028, 172, 423, 1200
        characters); ``background`` or ``evaluation`` (964, 659) for the other split.

    Returns
    -------
    list of str
    """
    check_split(split, part)
    if split == "background-evaluation":
        return source_class_names(f"images_{part}")
    if part == "trainval":
        return split_class_names(split, "train") + split_class_names(split, "val")
    return [
        name
        for alphabet in VINYALS_ALPHABETS[part]
        for name in _character_names(
            alphabet,
            VINYALS_CHARACTER_RANGES.get((part, alphabet), range(1, _NUM_CHARACTERS[alphabet] + 1)),
        )
    ]
