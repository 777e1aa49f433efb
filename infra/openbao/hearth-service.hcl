# Policy of every Hearth service's AppRole (single-box default): envelope encryption under the
# tenant keys and nothing else of transit. A tenant's key is created on its first use through
# `encrypt` (transit creates a missing key there when the token has `create` on that path), so
# services need no rights on `transit/keys/` at all: reading, configuring, rotating and deleting
# keys is the keyadmin role's (hearth-keyadmin.hcl).
path "transit/encrypt/hearth-tenant-*"           { capabilities = ["create", "update"] }
path "transit/datakey/plaintext/hearth-tenant-*" { capabilities = ["update"] }
path "transit/decrypt/hearth-tenant-*"           { capabilities = ["update"] }
path "transit/rewrap/hearth-tenant-*"            { capabilities = ["update"] }
# Temporal payloads (shared/crypto/payload_codec.py): data keys under the platform key made at
# setup, and unwrapping them; nothing else of that key (no encrypt: a service cannot create it).
path "transit/datakey/plaintext/hearth-payloads" { capabilities = ["update"] }
path "transit/decrypt/hearth-payloads"           { capabilities = ["update"] }
path "secret/data/hearth/*"     { capabilities = ["read"] }
path "secret/metadata/hearth/*" { capabilities = ["read", "list"] }
path "auth/token/lookup-self"   { capabilities = ["read"] }
path "auth/token/renew-self"    { capabilities = ["update"] }
