"""Encryption at rest: envelope encryption with OpenBao transit (``transit``) and AES-256-GCM (``sealing``).

Each object gets its own data key from transit ``datakey`` under the tenant's key
(``hearth-tenant-<tenant>``); the data is encrypted locally with AES-256-GCM and only the wrapped
data key travels with the ciphertext, in a small versioned ``SealHeader``. Reading unwraps it with
transit ``decrypt``. Deleting the tenant's key (``KeyAdmin.shred``) makes every object under it
unrecoverable. Not to be confused with ``shared.events.envelope`` (the CloudEvents envelope).
"""

from shared.crypto.sealing import (
    ALGORITHM,
    FORMAT_VERSION,
    NONCE_PREFIX_BYTES,
    TAG_BYTES,
    SealHeader,
    open_chunk,
    seal_chunk,
    seal_object,
    unseal_object,
)
from shared.crypto.transit import (
    DataKey,
    KeyAdmin,
    KeyDestroyed,
    TransitKeyring,
    tenant_key_name,
)

__all__ = [
    "ALGORITHM",
    "FORMAT_VERSION",
    "NONCE_PREFIX_BYTES",
    "TAG_BYTES",
    "DataKey",
    "KeyAdmin",
    "KeyDestroyed",
    "SealHeader",
    "TransitKeyring",
    "open_chunk",
    "seal_chunk",
    "seal_object",
    "tenant_key_name",
    "unseal_object",
]
