# Policy of the keyadmin AppRole (secrets/approle-keyadmin.json): rotation and crypto-shredding of
# tenant keys (read the key, rotate, allow deletion in its config, delete). No data key, no
# decrypt: an operator who can destroy keys cannot read the data they protect.
path "transit/keys/hearth-tenant-*" { capabilities = ["read", "update", "delete"] }
# The payload key may be read and rotated, never configured or deleted: deleting it would make
# every workflow history unreadable.
path "transit/keys/hearth-payloads"        { capabilities = ["read"] }
path "transit/keys/hearth-payloads/rotate" { capabilities = ["update"] }
path "auth/token/lookup-self"       { capabilities = ["read"] }
path "auth/token/renew-self"        { capabilities = ["update"] }
