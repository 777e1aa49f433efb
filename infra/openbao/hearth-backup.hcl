# Policy of the backup AppRole (secrets/approle-backup.json): `hearth backup` takes OpenBao's raft
# snapshot with it instead of the root token. Reading the snapshot is all it may do; the snapshot
# holds every key, which is why the archive is encrypted and why restoring needs the root token.
path "sys/storage/raft/snapshot" { capabilities = ["read"] }
path "auth/token/lookup-self"    { capabilities = ["read"] }
path "auth/token/revoke-self"    { capabilities = ["update"] }
