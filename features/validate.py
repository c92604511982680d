"""Field validators: the unified social credit code (GB 32100-2015) and registered capital."""

from __future__ import annotations

import numpy as np
import pandas as pd

CREDIT_CODE_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters, no I, O, S, V, Z
CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_CHAR_VALUE = {c: i for i, c in enumerate(CREDIT_CODE_CHARSET)}


def credit_code_check_char(first17: str) -> str:
    """The 18th (check) character of a unified social credit code from its first 17 characters.

    >>> credit_code_check_char("91420100MA4KL7X1")  # doctest: +SKIP
    """
    if len(first17) != 17:
        raise ValueError(f"credit code body must have 17 characters; got {len(first17)} ({first17!r})")
    try:
        total = sum(_CHAR_VALUE[c] * w for c, w in zip(first17, CREDIT_CODE_WEIGHTS, strict=True))
    except KeyError as exc:
        raise ValueError(f"credit code body {first17!r} has a character outside {CREDIT_CODE_CHARSET}: {exc}") from None
    return CREDIT_CODE_CHARSET[(31 - total % 31) % 31]


def is_valid_credit_code(code: str) -> bool:
    """True when ``code`` has 18 characters of the GB 32100-2015 charset and a correct check char."""
    if not isinstance(code, str) or len(code) != 18 or any(c not in _CHAR_VALUE for c in code):
        return False
    return credit_code_check_char(code[:17]) == code[17]


def valid_credit_codes(codes: pd.Series) -> np.ndarray:
    """Vectorised :func:`is_valid_credit_code` over a string Series; returns a bool array."""
    s = codes.astype("string").fillna("")
    ok_len = (s.str.len() == 18).to_numpy(dtype=bool)
    out = np.zeros(len(s), dtype=bool)
    if not ok_len.any():
        return out
    arr = np.frombuffer("".join(s[ok_len].tolist()).encode("ascii", errors="replace"), dtype=np.uint8)
    arr = arr.reshape(-1, 18)
    lut = np.full(256, -1, dtype=np.int64)
    for c, v in _CHAR_VALUE.items():
        lut[ord(c)] = v
    vals = lut[arr]
    charset_ok = (vals >= 0).all(axis=1)
    total = (vals[:, :17] * np.asarray(CREDIT_CODE_WEIGHTS)).sum(axis=1)
    check = (31 - total % 31) % 31
    out[np.flatnonzero(ok_len)] = charset_ok & (check == vals[:, 17])
    return out


def make_credit_codes(bodies: np.ndarray) -> np.ndarray:
    """Append check characters to an array of 17-character bodies (used by the sample generator)."""
    return np.asarray([b + credit_code_check_char(b) for b in bodies], dtype=object)
