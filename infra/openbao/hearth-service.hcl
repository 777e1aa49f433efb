# Policy of every Hearth service's AppRole (single-box default). The governance issue narrows it
# per service and per tenant key.
path "transit/encrypt/*"  { capabilities = ["update"] }
path "transit/decrypt/*"  { capabilities = ["update"] }
path "transit/datakey/*"  { capabilities = ["update"] }
path "transit/rewrap/*"   { capabilities = ["update"] }
path "transit/keys/*"     { capabilities = ["create", "read", "update"] }
path "secret/data/hearth/*"     { capabilities = ["read"] }
path "secret/metadata/hearth/*" { capabilities = ["read", "list"] }
path "auth/token/lookup-self"   { capabilities = ["read"] }
path "auth/token/renew-self"    { capabilities = ["update"] }
