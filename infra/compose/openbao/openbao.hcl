# OpenBao server of the compose stack (docker-compose.yml, service `openbao`).
# Same shape as the native launcher's: integrated (raft) storage, one node. OpenBao 2.x has no
# `file` storage backend.

# OpenBao 2.7 no longer knows `disable_mlock` (it warns about it), so none is set and the
# container needs no IPC_LOCK capability.
ui = false

api_addr     = "http://openbao:8200"
cluster_addr = "http://openbao:8201"

storage "raft" {
  # /openbao/file exists in the image, owned by the openbao user, so the `openbao-data` volume
  # mounted there is writable without a root step.
  path    = "/openbao/file"
  node_id = "hearth-openbao-1"
}

# Plain HTTP on the compose network only (the port is not published). Put TLS here before
# reaching OpenBao from outside that network.
listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_disable     = true
}

# Auto-unseal with a static 32-byte key, mounted as the `openbao-seal-key` compose secret
# (var/compose/secrets/openbao-seal-key, written by infra/compose/init-secrets.sh). The
# openbao-init job then initialises with recovery keys instead of unseal keys. To rotate: put the
# new key in current_key with a new current_key_id, the old one in previous_key/previous_key_id.
seal "static" {
  current_key_id = "hearth-seal-1"
  current_key    = "file:///run/secrets/openbao-seal-key"
}
