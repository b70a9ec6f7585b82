#!/bin/sh
# Entry point of Nua's mariadb-10.11 image: the environment contract of the official
# `mariadb` image (github.com/MariaDB/mariadb-docker), in POSIX sh.
#
# MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD
# (one is required), MARIADB_ROOT_HOST (default %), MARIADB_USER, MARIADB_PASSWORD,
# MARIADB_DATABASE, each also as MYSQL_* and as VAR_FILE read from a file; data in
# /var/lib/mysql, made at first start only, when /docker-entrypoint-initdb.d/*.sql,
# *.sql.gz and *.sh run once. Secrets are never printed (a random root password is
# not shown either: it is meant to be unknown).
set -eu

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

# file_env VAR [DEFAULT]: VAR from the environment, or from the file VAR_FILE names; for
# MARIADB_X, MYSQL_X and MYSQL_X_FILE too when neither is set.
file_env() {
    var=$1
    default=${2:-}
    alias=MYSQL_${var#MARIADB_}
    eval "value=\${$var:-}"
    eval "file=\${${var}_FILE:-}"
    if [ -z "$value" ] && [ -z "$file" ]; then
        eval "value=\${$alias:-}"
        eval "file=\${${alias}_FILE:-}"
        var_shown=$alias
    else
        var_shown=$var
    fi
    if [ -n "$value" ] && [ -n "$file" ]; then
        echo "error: both $var_shown and ${var_shown}_FILE are set (but are exclusive)" >&2
        exit 1
    fi
    if [ -n "$file" ]; then
        value=$(cat -- "$file") || {
            echo "error: cannot read ${var_shown}_FILE (\`$file\`)" >&2
            exit 1
        }
    elif [ -z "$value" ]; then
        value=$default
    fi
    export "$var=$value"
    unset "${var}_FILE" "$alias" "${alias}_FILE"
}

# A string as the inside of an SQL '…' literal.
sql_escape() {
    printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"
}

# An identifier as the inside of `…`.
sql_ident() {
    printf '%s' "$1" | sed -e 's/`/``/g'
}

if [ "${1#-}" != "$1" ]; then
    set -- mariadbd "$@"
fi

case "$1" in
mariadbd | mysqld) server=1 ;;
*) server= ;;
esac

if [ -n "$server" ] && [ "$(id -u)" = 0 ]; then
    # Started as root (the image's user): own the data, then run as mysql.
    mkdir -p "$DATADIR" /run/mysqld
    find "$DATADIR" /run/mysqld ! -user mysql -exec chown mysql:mysql '{}' +
    exec setpriv --reuid=mysql --regid=mysql --init-groups -- "$0" "$@"
fi

if [ -n "$server" ] && [ ! -d "$DATADIR/mysql" ]; then
    file_env MARIADB_ROOT_PASSWORD
    file_env MARIADB_ALLOW_EMPTY_ROOT_PASSWORD
    file_env MARIADB_RANDOM_ROOT_PASSWORD
    file_env MARIADB_ROOT_HOST %
    file_env MARIADB_USER
    file_env MARIADB_PASSWORD
    file_env MARIADB_DATABASE
    if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] &&
        [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
        cat >&2 <<'TEXT'
error: the database is uninitialized and no root password option is given.
       Set one of MARIADB_ROOT_PASSWORD (or MARIADB_ROOT_PASSWORD_FILE),
       MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD.
TEXT
        exit 1
    fi
    if [ -n "$MARIADB_USER" ] && [ "$MARIADB_USER" = root ]; then
        echo "error: MARIADB_USER=root: root is made by MARIADB_ROOT_PASSWORD*" >&2
        exit 1
    fi
    if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ] && [ -z "$MARIADB_ROOT_PASSWORD" ]; then
        MARIADB_ROOT_PASSWORD=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)
        echo "the root password is random and not shown"
    fi

    echo "initializing the database in $DATADIR"
    mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
        --skip-test-db --cross-bootstrap --skip-log-bin --default-time-zone=SYSTEM \
        --old-mode=UTF8_IS_UTF8MB3 >/dev/null
    # A server on the socket only while users, the database and init scripts are made.
    mariadbd --skip-networking --socket="$SOCKET" --skip-log-bin \
        --loose-innodb-buffer-pool-load-at-startup=0 &
    pid=$!
    mariadb_local() {
        mariadb --protocol=socket --socket="$SOCKET" -uroot --skip-password \
            --database=mysql "$@"
    }
    tries=0
    until printf 'SELECT 1' | mariadb_local >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "error: the temporary server did not start" >&2
            exit 1
        fi
        sleep 1
    done

    root_password=$(sql_escape "$MARIADB_ROOT_PASSWORD")
    root_host=$(sql_escape "$MARIADB_ROOT_HOST")
    # printf, not echo: dash's echo would undo the escaping of backslashes.
    {
        printf '%s\n' "SET @@SESSION.SQL_LOG_BIN=0;"
        printf '%s\n' "DROP USER IF EXISTS root@'127.0.0.1', root@'::1';"
        printf '%s\n' "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname, '\\'');"
        printf '%s\n' "SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$root_password');"
        if [ "$MARIADB_ROOT_HOST" != localhost ]; then
            printf '%s\n' "CREATE USER 'root'@'$root_host' IDENTIFIED BY '$root_password';"
            printf '%s\n' "GRANT ALL ON *.* TO 'root'@'$root_host' WITH GRANT OPTION;"
            printf '%s\n' "GRANT PROXY ON ''@'%' TO 'root'@'$root_host' WITH GRANT OPTION;"
        fi
        if [ -n "$MARIADB_DATABASE" ]; then
            printf '%s\n' "CREATE DATABASE IF NOT EXISTS \`$(sql_ident "$MARIADB_DATABASE")\`;"
        fi
        if [ -n "$MARIADB_USER" ]; then
            user=$(sql_escape "$MARIADB_USER")
            printf '%s\n' "CREATE USER '$user'@'%' IDENTIFIED BY '$(sql_escape "$MARIADB_PASSWORD")';"
            if [ -n "$MARIADB_DATABASE" ]; then
                printf '%s\n' "GRANT ALL ON \`$(sql_ident "$MARIADB_DATABASE" | sed 's/_/\\_/g')\`.* TO '$user'@'%';"
            fi
        fi
        printf '%s\n' "FLUSH PRIVILEGES;"
    } | mariadb_local

    # From here on root needs its password: the scripts get it through a file.
    cnf=$(umask 077 && mktemp)
    printf '[client]\npassword="%s"\n' "$(printf '%s' "$MARIADB_ROOT_PASSWORD" | sed 's/["\\]/\\&/g')" >"$cnf"
    mariadb_init() {
        mariadb --defaults-extra-file="$cnf" --protocol=socket --socket="$SOCKET" -uroot \
            ${MARIADB_DATABASE:+"--database=$MARIADB_DATABASE"} "$@"
    }
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
        *.sh)
            echo "running $f"
            if [ -x "$f" ]; then "$f"; else . "$f"; fi
            ;;
        *.sql)
            echo "running $f"
            mariadb_init <"$f"
            ;;
        *.sql.gz)
            echo "running $f"
            gzip -dc "$f" | mariadb_init
            ;;
        */\*) ;;
        *) echo "ignoring $f" ;;
        esac
    done
    rm -f "$cnf"
    kill "$pid"
    wait "$pid" || true
    unset MARIADB_ROOT_PASSWORD MARIADB_PASSWORD root_password
    echo "the database is initialized; starting the server"
fi

exec "$@"
