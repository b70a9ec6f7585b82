#!/bin/sh
# Entry point of Nua's postgres-15 image: the environment contract of the official
# `postgres` image (github.com/docker-library/postgres), in POSIX sh.
#
# POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER
# (default postgres), POSTGRES_DB (default the user), POSTGRES_INITDB_ARGS, each also as
# VAR_FILE read from a file; data in PGDATA, made at first start only, when
# /docker-entrypoint-initdb.d/*.sql, *.sql.gz and *.sh run once. Secrets are never printed.
set -eu

# file_env VAR [DEFAULT]: VAR from the environment, or from the file VAR_FILE names.
file_env() {
    var=$1
    default=${2:-}
    eval "value=\${$var:-}"
    eval "file=\${${var}_FILE:-}"
    if [ -n "$value" ] && [ -n "$file" ]; then
        echo "error: both $var and ${var}_FILE are set (but are exclusive)" >&2
        exit 1
    fi
    if [ -n "$file" ]; then
        value=$(cat -- "$file") || {
            echo "error: cannot read ${var}_FILE (\`$file\`)" >&2
            exit 1
        }
    elif [ -z "$value" ]; then
        value=$default
    fi
    export "$var=$value"
    unset "${var}_FILE"
}

# `docker run IMAGE -c shared_buffers=256MB` passes options to postgres.
if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
    # Started as root (the image's user): own the data folder, then run as postgres.
    mkdir -p "$PGDATA" /run/postgresql
    chown postgres:postgres "$PGDATA" /run/postgresql
    chmod 0700 "$PGDATA"
    chmod 3777 /run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
        cat >&2 <<'TEXT'
error: the database is uninitialized and no superuser password is given.
       Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty value for the
       superuser; or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without
       a password (not recommended).
TEXT
        exit 1
    fi
    if [ "$(id -u)" != "$(stat -c %u "$PGDATA" 2>/dev/null || id -u)" ]; then
        echo "error: \`$PGDATA\` does not belong to user $(id -un)" >&2
        exit 1
    fi
    echo "initializing the database in $PGDATA"
    # The password in a file only this user reads, gone as soon as initdb has read it.
    pwfile=$(umask 077 && mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" $POSTGRES_INITDB_ARGS >/dev/null || {
        rm -f "$pwfile"
        exit 1
    }
    rm -f "$pwfile"
    # Local connections trust (initdb's default), every other host authenticates.
    printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    # A server on the socket only while the database and the init scripts are made.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    psql() {
        command psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
    }
    if [ "$POSTGRES_DB" != postgres ]; then
        printf 'CREATE DATABASE :"db";\n' | psql --dbname postgres --set db="$POSTGRES_DB" >/dev/null
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
        *.sh)
            echo "running $f"
            if [ -x "$f" ]; then "$f"; else . "$f"; fi
            ;;
        *.sql)
            echo "running $f"
            psql --dbname "$POSTGRES_DB" -f "$f" >/dev/null
            ;;
        *.sql.gz)
            echo "running $f"
            gzip -dc "$f" | psql --dbname "$POSTGRES_DB" >/dev/null
            ;;
        */\*) ;;
        *) echo "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    unset POSTGRES_PASSWORD
    echo "the database is initialized; starting the server"
fi

exec "$@"
