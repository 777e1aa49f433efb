#!/bin/sh
# One-shot job `volumes-init` of docker-compose.yml: hand two fresh named volumes to the
# non-root users that write them. Docker creates a named volume owned by root unless the image
# already has the mount point; the nats image has no /data and the openbao image no
# /openbao/init. Every other volume is mounted where its image keeps a directory owned by the
# right user, so needs no step here.
#
# Runs as root with CAP_CHOWN only, without network, and touches a directory only while it is
# still root's (a fresh volume), so later starts change nothing.
set -eu

claim() { # claim <dir> <owner> <mode>
    if [ "$(stat -c %u "$1")" = 0 ]; then
        chmod "$3" "$1" # while still ours: chmod on another user's directory needs CAP_FOWNER
        chown "$2" "$1"
        echo "volumes-init: $1 -> $2 ($3)"
    fi
}

claim /volumes/nats "${NATS_UID:-4222}:${NATS_UID:-4222}" 0700
claim /volumes/openbao-init openbao:openbao 0700
