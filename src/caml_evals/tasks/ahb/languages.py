"""Language labels as the AHB data spells them, mapped to one canonical English name.

The published rows label the same language several ways ("Bangla"/"Bengali", "Punjab") and
leave English originals as null. Filters accept names or ISO 639-1 codes in any case.
"""

from __future__ import annotations

ENGLISH = "English"

_ALIASES: dict[str, str] = {
    "en": "English",
    "english": "English",
    "original": "English",
    "bn": "Bengali",
    "bangla": "Bengali",
    "bengali": "Bengali",
    "pa": "Punjabi",
    "punjab": "Punjabi",
    "punjabi": "Punjabi",
    "zh": "Mandarin",
    "cmn": "Mandarin",
    "mandarin": "Mandarin",
    "chinese": "Mandarin",
    "yue": "Cantonese",
    "cantonese": "Cantonese",
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
    "tl": "Filipino",
    "fil": "Filipino",
    "tagalog": "Filipino",
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


def normalise_language(label: str | None) -> str:
    """Canonical language name; None/empty (the English originals) -> "English"."""
    if label is None or not str(label).strip():
        return ENGLISH
    key = " ".join(str(label).split()).casefold()
    return _ALIASES.get(key, " ".join(w.capitalize() for w in key.split()))
