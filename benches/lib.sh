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
