"""``anosys_sdk_core.encryption``: :mod:`anosys.encryption`."""

from anosys.encryption import (
    ANOSYS_ENCRYPTION_PREFIX,
    DEFAULT_ENCRYPTED_COLUMNS,
    decrypt,
    derive_256_bit_key,
    encrypt,
    encrypt_payload,
    get_encryption_key,
    get_target_columns,
)

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
