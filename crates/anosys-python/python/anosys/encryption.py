"""Client-side encryption of AnoSys columns, as the original AnoSys SDKs do
it (``anosys_sdk_core.encryption``): AES-256-CBC with a zero IV and PKCS#7
padding, the key the SHA-256 of a passphrase, values sent as ``enc:`` and
Base64.

You do not need these to have records encrypted: with
``ANOSYS_ENCRYPTION_KEY`` set, the engine encrypts the chosen columns
(``ANOSYS_ENCRYPTED_COLUMNS``, else :data:`DEFAULT_ENCRYPTED_COLUMNS`) of
every body it sends to AnoSys, from every language. They are here for code
written against the original SDK, and to read values back: the functions
are the engine's own (the same code encrypts what the engine sends).

The scheme is the backend's, and weak (a fixed IV, no authentication):
equal texts give equal ciphertexts, and a changed ciphertext is not
detected.

>>> from anosys.encryption import decrypt, derive_256_bit_key, encrypt
>>> key = derive_256_bit_key("my passphrase")
>>> len(key)
32
>>> decrypt("enc:" + encrypt("hello", key), key)
'hello'
"""

from __future__ import annotations

import logging
import sys
from typing import Any, List, Optional, Set

from . import _native

__all__ = [
    "ANOSYS_ENCRYPTION_PREFIX",
    "DEFAULT_ENCRYPTED_COLUMNS",
    "decrypt",
    "derive_256_bit_key",
    "encrypt",
    "encrypt_payload",
    "get_encryption_key",
    "get_target_columns",
]

_logger = logging.getLogger("anosys")

#: What an encrypted value starts with.
ANOSYS_ENCRYPTION_PREFIX: str = _native.ENCRYPTION_PREFIX

#: The columns encrypted unless ``ANOSYS_ENCRYPTED_COLUMNS`` names others:
#: prompts, completions, messages, system instructions, the raw record.
DEFAULT_ENCRYPTED_COLUMNS: List[str] = list(_native.DEFAULT_ENCRYPTED_COLUMNS)


def derive_256_bit_key(passphrase: str) -> bytes:
    """The 32-byte AES key of a passphrase: its SHA-256."""
    return _native.derive_256_bit_key(passphrase)


def encrypt(text: str, key: bytes) -> str:
    """``text`` encrypted under ``key`` (32 bytes), in standard Base64,
    without the ``enc:`` prefix. ``ValueError`` for a key of another
    length."""
    return _native.encrypt(text, bytes(key))


def decrypt(prefixed_or_raw: str, key: bytes) -> str:
    """The text of an encrypted value, with or without its ``enc:`` prefix.

    ``ValueError`` when it is not one (not Base64, not whole AES blocks, or
    wrong padding or text: another key). The original SDK raised for the
    first and returned undecoded bytes as text for the others.
    """
    return _native.decrypt(prefixed_or_raw, bytes(key))


def get_encryption_key() -> Optional[str]:
    """The passphrase in ``ANOSYS_ENCRYPTION_KEY``, trimmed; ``None`` when it
    is unset, blank, or ``null``, ``none`` or ``undefined``."""
    return _native.encryption_settings()[0]


def get_target_columns() -> Set[str]:
    """The columns to encrypt: ``ANOSYS_ENCRYPTED_COLUMNS`` (or the original
    SDKs' other spelling, ``ANOSYS_ENCRYPTES_COLUMNS``), comma-separated,
    else :data:`DEFAULT_ENCRYPTED_COLUMNS`."""
    return set(_native.encryption_settings()[1])


def _warn(message: str) -> None:
    print(message, file=sys.stderr)
    _logger.warning(message)


def encrypt_payload(data: Any) -> Any:
    """Encrypts, in place, the target columns of a body (a dict, or each dict
    of a list) when ``ANOSYS_ENCRYPTION_KEY`` is set, and returns it.

    A column holding something other than text is left as it is, with a
    warning; one already encrypted (``enc:``...) is left alone; anything
    that is not a dict or a list is returned unchanged.

    >>> import os
    >>> os.environ["ANOSYS_ENCRYPTION_KEY"] = "my passphrase"
    >>> body = encrypt_payload({"llm_input": "secret prompt", "cvn3": 443})
    >>> body["llm_input"].startswith("enc:"), body["cvn3"]
    (True, 443)
    >>> del os.environ["ANOSYS_ENCRYPTION_KEY"]
    """
    if data is None:
        return None
    if isinstance(data, list):
        return [encrypt_payload(item) for item in data]
    if not isinstance(data, dict):
        return data
    passphrase, columns = _native.encryption_settings()
    if not passphrase:
        return data
    key = _native.derive_256_bit_key(passphrase)
    for column in columns:
        value = data.get(column)
        if value is None:
            continue
        if not isinstance(value, str):
            _warn(
                f"[ANOSYS] Warning: Column '{column}' contains non-string data "
                f"(type: {type(value).__name__}). Skipping encryption."
            )
            continue
        if value.startswith(ANOSYS_ENCRYPTION_PREFIX):
            continue
        data[column] = ANOSYS_ENCRYPTION_PREFIX + _native.encrypt(value, key)
    return data
