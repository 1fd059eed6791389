"""The original ``anosys-sdk-core`` package's import name (1.0.14): code
written against it keeps working, over anosys's engine. Everything here is
:mod:`anosys` (the decorators and the raw logger), :mod:`anosys.encryption`
and :mod:`anosys.compat`; the README's "Moving from the original SDK"
says what differs.

As the original did, importing it reads a ``.env`` file into the
environment (without overriding what is set) when ``python-dotenv`` is
installed.
"""

try:  # before anosys reads its configuration, as the original did at import
    from dotenv import load_dotenv as _load_dotenv

    _load_dotenv()
except Exception:  # python-dotenv not installed, or an unreadable file
    pass

from anosys_sdk_core.client import AnosysClient
from anosys_sdk_core.config import get_api_url, get_env_bool, resolve_api_key
from anosys_sdk_core.context import get_user_context, set_user_context
from anosys_sdk_core.decorators import anosys_logger, anosys_raw_logger, setup_api, setup_decorator
from anosys_sdk_core.encryption import (
    ANOSYS_ENCRYPTION_PREFIX,
    DEFAULT_ENCRYPTED_COLUMNS,
    decrypt,
    derive_256_bit_key,
    encrypt,
    encrypt_payload,
    get_encryption_key,
    get_target_columns,
)
from anosys_sdk_core.models import BASE_KEY_MAPPING

from anosys import __version__

__all__ = [
    # Config
    "get_api_url",
    "get_env_bool",
    "resolve_api_key",
    # Client
    "AnosysClient",
    # Decorators
    "anosys_logger",
    "anosys_raw_logger",
    "setup_api",
    "setup_decorator",
    # Context
    "get_user_context",
    "set_user_context",
    # Models
    "BASE_KEY_MAPPING",
    # Encryption
    "ANOSYS_ENCRYPTION_PREFIX",
    "DEFAULT_ENCRYPTED_COLUMNS",
    "derive_256_bit_key",
    "encrypt",
    "decrypt",
    "get_encryption_key",
    "get_target_columns",
    "encrypt_payload",
]
