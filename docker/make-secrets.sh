#!/bin/sh
# Creates the secret files docker-compose.yml mounts (default: ./secrets next to it), each
# a random token; files that already exist are kept. The directory is private to you; the
# files are world-readable inside it because each container reads them as its own user.
set -eu

dir=${1:-"$(dirname "$0")/../secrets"}
mkdir -p "$dir"
chmod 0700 "$dir"
for name in receiver_webhook_token receiver_api_token receiver_ui_secret postgres_password \
            grafana_admin_password; do
  if [ -s "$dir/$name" ]; then
    continue
  fi
  LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 40 >"$dir/$name"
  chmod 0644 "$dir/$name"
  echo "created $dir/$name"
done
