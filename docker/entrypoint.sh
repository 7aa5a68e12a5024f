#!/bin/sh
# Reads secrets from files: for every RECEIVER_<NAME>_FILE (and PGPASSWORD_FILE) in the
# environment, exports RECEIVER_<NAME> (PGPASSWORD) with the file's content, then runs
# the command. So Compose or Kubernetes secrets never have to sit in the environment.
set -eu

for name in $(env | sed -n -e 's/^\(RECEIVER_[A-Z0-9_]*\)_FILE=.*/\1/p' \
                           -e 's/^\(PGPASSWORD\)_FILE=.*/\1/p'); do
  file=$(printenv "${name}_FILE")
  if printenv "$name" >/dev/null; then
    echo "receiver-entrypoint: both $name and ${name}_FILE are set" >&2
    exit 2
  fi
  if [ ! -r "$file" ]; then
    echo "receiver-entrypoint: ${name}_FILE: cannot read $file" >&2
    exit 2
  fi
  value=$(cat "$file")  # without the trailing newline
  if [ -z "$(printf '%s' "$value" | tr -d '[:space:]')" ]; then
    echo "receiver-entrypoint: ${name}_FILE: $file is empty" >&2
    exit 2
  fi
  export "$name=$value"
  unset "${name}_FILE"
done

exec "$@"
