# Helpers shared by the comparison scripts of benches/ (sourced, not run).

now() { date +%s.%N; }
# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.2f", m}'; }
# time_it CMD...: seconds taken by CMD, its output discarded
time_it() {
    local t0
    t0=$(now)
    "$@" >/dev/null 2>&1 || { echo "benchmark command failed: $*" >&2; kill $$; }
    echo "$(now) - $t0" | bc
}

# first_answer PORT T0: seconds from T0 until GET / on PORT answers 200.
first_answer() {
    local port=$1 t0=$2
    for _ in $(seq 1 3000); do
        if curl -fs -o /dev/null "http://127.0.0.1:$port/"; then
            echo "$(now) - $t0" | bc
            return
        fi
        sleep 0.02
    done
    echo "no answer on port $port" >&2
    exit 1
}

# free_port: a TCP port free on 127.0.0.1 now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# extra_ca IMAGE: the CAs the host trusts (HOST_CA, default the system bundle) that IMAGE's
# bundle lacks, as PEM on stdout, nothing when there are none. For the EXTRA_CA build arg of
# the Dockerfiles of benches/apps/: PyPI and npm may only be reachable through a
# TLS-inspecting proxy whose CA the host trusts and nua's bases do not. Docker is
# ${DOCKER:-docker}.
extra_ca() {
    local base
    base=$(mktemp) || return 1
    if ! "${DOCKER:-docker}" run --rm "$1" cat /etc/ssl/certs/ca-certificates.crt >"$base"; then
        rm -f "$base"
        return 1
    fi
    awk -v basef="$base" '
        BEGIN { while ((getline l < basef) > 0) { if (l ~ /BEGIN CERT/) b = ""; b = b l "\n"; if (l ~ /END CERT/) seen[b] = 1 } }
        /BEGIN CERT/ { blk = ""; inb = 1 }
        inb { blk = blk $0 "\n" }
        /END CERT/ { inb = 0; if (!(blk in seen)) printf "%s", blk }' "${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}"
    rm -f "$base"
}
