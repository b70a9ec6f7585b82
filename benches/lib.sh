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
