"""The original ``anosys-sdk-openai`` package's import name (1.0.14): code
written against it keeps working, over anosys's engine. The README's
"Moving from the original SDK" says what differs.

>>> from anosys_sdk_openai import AnosysOpenAILogger
>>> AnosysOpenAILogger()  # every openai call recorded, and the spans of the global tracer provider
"""

import anosys_sdk_core  # noqa: F401  (reads .env first, as the original did)
from anosys_sdk_core import (
    ANOSYS_ENCRYPTION_PREFIX,
    DEFAULT_ENCRYPTED_COLUMNS,
    anosys_logger,
    anosys_raw_logger,
    decrypt,
    derive_256_bit_key,
    encrypt,
    encrypt_payload,
    get_encryption_key,
    get_target_columns,
    setup_api,
    setup_decorator,
)
from anosys_sdk_openai.instrumentor import AnosysOpenAILogger, setup_tracing

from anosys import __version__

__all__ = [
    "AnosysOpenAILogger",
    "setup_tracing",
    # Re-exports from core
    "anosys_logger",
    "anosys_raw_logger",
    "setup_api",
    "setup_decorator",
    "encrypt_payload",
    "get_encryption_key",
    "get_target_columns",
    "derive_256_bit_key",
    "encrypt",
    "decrypt",
    "ANOSYS_ENCRYPTION_PREFIX",
    "DEFAULT_ENCRYPTED_COLUMNS",
]
