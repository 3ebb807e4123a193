"""ONE language normaliser for every tagged-question benchmark.

The published rows spell one language several ways (AHB: "Bangla"/"Bengali", "Punjab"; null for
the English originals; MORU: ISO codes "en", "ms", "hi"). Filters accept names or ISO 639 codes
in any case. `language_name` gives the canonical English name (AHB's metadata and breakdowns),
`language_code` the ISO code (MORU's sample ids and metadata, as upstream writes them).
"""

from __future__ import annotations

import math

ENGLISH = "English"

# ISO code -> canonical name
CODES: dict[str, str] = {
    "en": "English",
    "bn": "Bengali",
    "pa": "Punjabi",
    "zh": "Mandarin",
    "yue": "Cantonese",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "pt": "Portuguese",
    "ru": "Russian",
    "ar": "Arabic",
    "he": "Hebrew",
    "hi": "Hindi",
    "ur": "Urdu",
    "ta": "Tamil",
    "te": "Telugu",
    "mr": "Marathi",
    "gu": "Gujarati",
    "ml": "Malayalam",
    "th": "Thai",
    "vi": "Vietnamese",
    "id": "Indonesian",
    "ms": "Malay",
    "fil": "Filipino",
    "ja": "Japanese",
    "ko": "Korean",
    "tr": "Turkish",
    "sw": "Swahili",
    "af": "Afrikaans",
    "fo": "Faroese",
    "ro": "Romanian",
    "bo": "Tibetan",
    "fi": "Finnish",
}

# other spellings (case-folded) -> canonical name
_ALIASES: dict[str, str] = {
    "original": "English",
    "bangla": "Bengali",
    "punjab": "Punjabi",
    "cmn": "Mandarin",
    "chinese": "Mandarin",
    "tl": "Filipino",
    "tagalog": "Filipino",
    "bahasa melayu": "Malay",
    "bahasa malaysia": "Malay",
}
_BY_NAME = {name.casefold(): name for name in CODES.values()}
_CODE_OF = {name: code for code, name in CODES.items()}


def _key(label: object) -> str:
    return " ".join(str(label).split()).casefold()


def is_blank(label: object) -> bool:
    """None, NaN (an empty parquet/CSV cell) or only whitespace."""
    return label is None or (isinstance(label, float) and math.isnan(label)) or not str(label).strip()


def language_name(label: object) -> str:
    """Canonical language name; None/empty (AHB's English originals) -> "English"."""
    if is_blank(label):
        return ENGLISH
    key = _key(label)
    return (
        CODES.get(key)
        or _ALIASES.get(key)
        or _BY_NAME.get(key)
        or " ".join(w.capitalize() for w in key.split())
    )


def language_code(label: object) -> str:
    """ISO code of a language label (None/empty -> "en"); an unknown label, case-folded."""
    name = language_name(label)
    return _CODE_OF.get(name, _key(label) if not is_blank(label) else "en")


normalise_language = language_name  # AHB's name for it
