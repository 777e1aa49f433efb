# Policy added to the governance service's AppRole beside hearth-service (its token carries both):
# the key-rotation schedule lists the transit keys, reads each one's versions and rotates tenant
# keys. Nothing more of keyadmin's: no configuring or deleting a key (crypto-shredding stays with
# the keyadmin AppRole alone), and never a rotation of the payload key (an explicit deny wins over
# any grant). `+` is one path segment: transit/keys/<name>, transit/keys/<name>/rotate.
path "transit/keys"                        { capabilities = ["list"] }
path "transit/keys/+"                      { capabilities = ["read"] }
path "transit/keys/+/rotate"               { capabilities = ["update"] }
path "transit/keys/hearth-payloads/rotate" { capabilities = ["deny"] }
