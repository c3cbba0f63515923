"""Sizes as people write them: ``10MB``, ``10m``, ``512k``, ``1GiB`` or plain bytes."""

_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}

# --max-body's default: a body above it is stored as its prefix, with its full size and SHA-256.
DEFAULT_MAX_BODY = 10 * 1024**2
DEFAULT_MAX_BODY_TEXT = "10MB"  # the same, as options show it


def parse_size(value: str | int) -> int:
    if isinstance(value, int):
        size = value
    else:
        text = value.strip().lower().removesuffix("b").removesuffix("i")
        try:
            size = int(float(text[:-1]) * _UNITS[text[-1]]) if text and text[-1] in _UNITS else int(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a size (examples: 10MB, 512k, 1048576)") from None
    if size < 0:
        raise ValueError("a size cannot be negative")
    return size
