#!/bin/sh
# Entry point of Nua's redis-7 image: the command line of the official `redis` image
# (github.com/docker-library/redis), in POSIX sh. `docker run IMAGE --appendonly yes` and
# `docker run IMAGE redis-server /path/redis.conf` both run redis-server as user redis,
# with its data in /data (the working folder).
set -eu

# First argument an option (`--appendonly`) or a config file: arguments of redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    # Started as root (the image's user): own the data, then run as redis.
    find . ! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups -- "$0" "$@"
fi

if [ "$1" = redis-server ]; then
    # Debian's redis-server refuses other hosts without a password when no config file
    # says otherwise (protected mode); the official image builds it with protected mode off,
    # and a container's network is its protection. A config file, or a later
    # `--protected-mode yes`, still decides.
    shift
    case "${1:-}" in
    *.conf) set -- redis-server "$@" ;;
    *) set -- redis-server --protected-mode no "$@" ;;
    esac
    # What redis writes is the user's alone (the official image's umask).
    if [ "$(umask)" = 0022 ]; then
        umask 0077
    fi
fi

exec "$@"
