#!/usr/bin/env bash
# The edit loop of a developer, `nua run` against Docker, on the flask-hello fixture (gunicorn,
# 2 workers, a health check; copied with its id changed), three measures in one run, each the
# median of RUNS, nua and Docker alternating run by run:
#
#   RUNS=5 benches/compare_watch.sh                  # RUNS=5 by default; builds nua (release)
#   NUA=/path/to/nua RUNS=3 benches/compare_watch.sh # that binary, no cargo build
#
# 1. Edit → new answer, both warm, each serving the previous version:
#    - nua: `nua run APP --watch --name bench-watch-nua`, started once (untimed) with a warm
#      cache. Each run: app.py is rewritten in place (EDIT=rename: written beside it and
#      renamed over it, as some editors do) so that `GET /` answers a new text; from just
#      before the write until that text answers on the port `nua run` printed.
#    - Docker: a container of a BuildKit build of benches/apps/flask-hello/Dockerfile, with
#      -p 127.0.0.1:PORT:8000, the builder's cache warm. Each run: app.py rewritten, then
#      `DOCKER_BUILDKIT=1 docker build -q -t TAG .` + `docker rm -f NAME` + `docker run -d
#      --name NAME -p 127.0.0.1:PORT:8000 TAG`; from just before the write until the new text
#      answers.
#    `GET /` is polled every 10 ms (a new connection each time, 10 s timeout), from the edit
#    until the new text and for 0.5 s after it: polls that fail (connection refused or reset,
#    timeout, status other than 200) are counted, before and after the new text, and so are
#    answers of the old text after the new one. For nua, the `reloaded NAME in X.XX s (...)`
#    line each edit makes on `nua run`'s stderr is shown as well. Docker is also measured a
#    second way, polled only once `docker run` has returned: a poller asking while its
#    container is replaced makes Docker's proxy take longer to reach the new one (about
#    0.7 s more here), so this is Docker's best case. Target: nua ≤ 0.5× Docker.
#    Without `--watch` in `nua run --help` the nua row is n/a (Docker's is still measured).
# 2. `nua run APP` after a one-line change (v2 built by nua beforehand, so its build is a
#    cache hit; then the thin load, the container) against `docker load -i v2.tar` + `docker
#    run -d -p` of nua's v2 tarball; Docker holds v1, v2 is removed (`docker rmi`) before each
#    timed command. From the command's start until v2's text answers (as compare_run.sh).
#    Target ≤ 0.8×.
# 3. Cold: `nua run APP` with an NUA_CACHE_DIR holding the base only (its blobs, layer index
#    and unpacked layers, as compare_apps.sh's cold builds: nothing of the app; and uv, the
#    installer nua fetches once, in `tools/`) against
#    BuildKit `docker build --no-cache` + `docker run -d -p`, after `docker builder prune
#    -af`. Docker holds the base (nua's `python` base, `nua base build` + `docker load`, tag
#    nua-base/python:bench) and not the app's image (removed before every run). From the
#    command's start until the app's text answers. Both install the dependencies from PyPI,
#    the Dockerfile with pip, nua with uv (its `dependencies` step of a requirements.txt), both
#    byte-compiling them, neither with a download cache.
#    Target ≤ 0.8×. How many layers nua's thin load sent is shown, and the images of others
#    through which Docker already held some of the app's own layers, if any (nua's layers are
#    reproducible: any earlier build of flask-hello's dependencies has the same layer).
# Polling, measures 2 and 3: each timed command has its poller started beforehand (Python up,
# blocked on a FIFO), told to go with t0 just after nua is started, or once `docker run` has
# returned; nua's port is read from its stderr by the poller itself. A second of `settle`
# comes before each timed command. So neither side's window holds Python's start, a
# process per look for the port, or the teardown of the run before it.
# Order: setup (the base: `nua base build python` into an empty cache, Debian packages
# downloaded, ~15 s; `docker load`; a warm nua cache: the app built once), then measure 3,
# 2, 1. For the `nua run`s of measures 2 and 3, each line of its stderr is stamped as it comes, which
# gives medians of when it said `dependencies running` / `done`, `loaded`, `started`.
#
# The proxy CA: the Dockerfile builds get the CAs the host trusts and the base lacks as
# EXTRA_CA (benches/lib.sh's extra_ca; see compare_apps.sh); nua mounts the host's bundle.
# Heavy jobs seen during a run (cargo test/build, rustc) and the load average are printed:
# numbers taken under load say so.
#
# Needs: a Docker daemon whose CLI has BuildKit built in (/usr/bin/docker, Debian's 20.10,
# unless DOCKER says otherwise; started by `scripts/test-env.sh setup` when none answers),
# python3, root or the docker group. `docker builder prune -af` empties the build cache of
# the whole daemon, not only this script's records.
# Cleans up at exit, interrupted or not: the `nua run --watch` process (SIGINT, then waited
# for), its containers, the images it built or tagged (nua-base/python:bench given back to the
# image it named before), the builder cache, the temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-5}
EDIT=${EDIT:-inplace}
DOCKER=${DOCKER:-/usr/bin/docker}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
export SOURCE_DATE_EPOCH=1700000000
log() { echo "compare_watch: $*" >&2; }
case $EDIT in inplace | rename) ;; *) log "EDIT is inplace or rename"; exit 1 ;; esac

for tool in python3 bc; do
    command -v "$tool" >/dev/null || { log "missing $tool: run scripts/test-env.sh setup"; exit 1; }
done
"$DOCKER" version >/dev/null 2>&1 || bash scripts/test-env.sh setup

reproduce="RUNS=$RUNS${NUA:+ NUA=$NUA}$([ "$EDIT" = inplace ] || echo " EDIT=$EDIT") benches/compare_watch.sh"
if [ -z "${NUA:-}" ]; then
    cargo build --release --locked --bin nua >&2
    NUA=$PWD/target/release/nua
fi
has_watch=
"$NUA" run --help | grep -q -- '--watch' && has_watch=1

BASE_TAG=nua-base/python:bench
EDIT_NAME=bench-watch-nua EDIT_DOCKER_NAME=bench-watch-docker
RUN_NAME=bench-watch-run-nua RUN_DOCKER_NAME=bench-watch-run-docker
COLD_NAME=bench-watch-cold-nua COLD_DOCKER_NAME=bench-watch-cold-docker
EDIT_TAG=nua-bench-watch-edit:1.0-1 EDIT_DOCKER_TAG=nua-bench-watch/edit:docker
V1=nua-bench-watch/run:v1 V2=nua-bench-watch-run:1.0-1
COLD_TAG=nua-bench-watch-cold:1.0-1 COLD_DOCKER_TAG=nua-bench-watch/cold:docker
# (`NAME.next`: the new version `--watch` starts beside the serving one.)
containers=("$EDIT_NAME" "$EDIT_NAME.next" "$EDIT_DOCKER_NAME" "$RUN_NAME" "$RUN_DOCKER_NAME" "$COLD_NAME" "$COLD_DOCKER_NAME")
tags=("$EDIT_TAG" "$EDIT_DOCKER_TAG" "$V1" "$V2" "$COLD_TAG" "$COLD_DOCKER_TAG")

work=$(mktemp -d "${TMPDIR:-/tmp}/watch-bench.XXXXXX")
watch_pid=
fg_pid=                  # a `nua run` in the foreground of measures 2 and 3, while it runs
poll_pid=                # a poller in the background (measure 1, Docker)
image_ids=()             # images built or left by this script, by id, removed at exit
base_before=unset        # the image nua-base/python:bench named before this script
pruned=
# stop PID: SIGINT (nua stops and removes the app), a second one after 30 s (nua kills it),
# SIGKILL after 10 s more; then waited for.
stop() {
    local pid=$1 _
    kill -INT "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$pid still running 30 s after SIGINT: SIGINT again"
        kill -INT "$pid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    set +e
    trap - INT TERM
    [ -z "$poll_pid" ] || { kill "$poll_pid" 2>/dev/null; wait "$poll_pid" 2>/dev/null; }
    [ -z "$fg_pid" ] || stop "$fg_pid"
    [ -z "$watch_pid" ] || stop "$watch_pid"
    "$DOCKER" rm -f "${containers[@]}" >/dev/null 2>&1
    local t id
    for t in "${tags[@]}"; do "$DOCKER" rmi "$t" >/dev/null 2>&1; done
    for id in "${image_ids[@]}"; do "$DOCKER" rmi "$id" >/dev/null 2>&1; done
    if [ "$base_before" != unset ]; then
        if [ -n "$base_before" ]; then
            "$DOCKER" tag "$base_before" "$BASE_TAG" >/dev/null 2>&1
        else
            "$DOCKER" rmi "$BASE_TAG" >/dev/null 2>&1
        fi
    fi
    [ -z "$pruned" ] || "$DOCKER" builder prune -af >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    log "FAILED: $*"
    exit 1
}
# fail_with FILE MESSAGE: fail, showing the end of FILE.
fail_with() {
    log "FAILED: $2; the end of $(basename "$1"):"
    tail -n 20 "$1" >&2 || true
    exit 1
}

# --- the poller -------------------------------------------------------------------------------
# poll.py (--port P | --port-from FILE) --text T (--t0 EPOCH | --write SRC DST [--rename] |
# --ready FILE --go FILE): GET / every 10 ms, a new connection each time, until it answers 200
# with the text T (stripped), then 0.5 s more. With --write, SRC's bytes are written over DST
# (in place, or renamed over it) and t0 taken just before. With --ready/--go, it is started
# ahead of the timed commands: it creates the ready file once Python is up, then waits, blocked
# on the go FIFO, for the script's `T0 [PID]` and polls from then on. With --port-from, the
# port is the first `http://127.0.0.1:PORT` FILE shows, waited for in the poller itself (no
# process per look: a loop of `grep`s would take a core from the command being measured);
# it fails if PID ends first. Prints: seconds from t0 to T, failed polls before, seconds from
# t0 to the first failure (-1: none), failed polls after, other answers after (the old text),
# the longest poll in ms, polls in all, the failures by kind.
cat >"$work/poll.py" <<'PY'
import argparse, http.client, os, re, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
p = argparse.ArgumentParser()
p.add_argument("--port", type=int)
p.add_argument("--port-from")
p.add_argument("--text", required=True)
p.add_argument("--t0", type=float)
p.add_argument("--write", nargs=2)
p.add_argument("--rename", action="store_true")
p.add_argument("--ready")
p.add_argument("--go")
p.add_argument("--timeout", type=float, default=300)
p.add_argument("--after", type=float, default=0.5)
p.add_argument("--interval", type=float, default=0.01)
a = p.parse_args()
pid = None

def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True

def get():
    c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
    try:
        c.request("GET", "/", headers={"Connection": "close"})
        r = c.getresponse()
        body = r.read().decode(errors="replace").strip()
        return (r.status, body) if r.status == 200 else (None, "HTTP %d" % r.status)
    except (OSError, http.client.HTTPException) as e:
        return None, type(e).__name__
    finally:
        c.close()

if a.write:
    src, dst = a.write
    data = open(src, "rb").read()
    if a.rename:
        tmp = src + ".rename"
        with open(tmp, "wb") as f:
            f.write(data)
        t0 = time.time()
        os.rename(tmp, dst)
    else:
        t0 = time.time()
        with open(dst, "wb") as f:
            f.write(data)
elif a.go:
    open(a.ready, "w").close()
    with open(a.go) as go:  # a FIFO: blocks, using no CPU, until the script writes to it
        words = go.readline().split()
    t0, pid = float(words[0]), int(words[1]) if len(words) > 1 else None
else:
    t0 = a.t0
if a.port_from:
    a.port = None
    while a.port is None:
        try:
            found_port = re.search(r"http://127\.0\.0\.1:([0-9]+)", open(a.port_from).read())
        except FileNotFoundError:
            found_port = None
        if found_port:
            a.port = int(found_port.group(1))
        elif time.time() - t0 > a.timeout or (pid is not None and not alive(pid)):
            sys.stderr.write("poll: %s shows no port (http://127.0.0.1:PORT)%s\n"
                             % (a.port_from, "" if pid is None or alive(pid) else ": it has ended"))
            sys.exit(1)
        else:
            time.sleep(a.interval)
kinds, failed, first_fail, polls, longest = {}, 0, -1.0, 0, 0.0
found = None
after_failed = after_other = 0
while True:
    start = time.time()
    if found is None and start - t0 > a.timeout:
        sys.stderr.write("poll: no answer %r on port %d after %.0f s; failures: %s\n"
                         % (a.text, a.port, a.timeout, kinds))
        sys.exit(1)
    if found is not None and start - t0 > found + a.after:
        break
    status, body = get()
    end = time.time()
    polls += 1
    longest = max(longest, end - start)
    if status is None:
        kinds[body] = kinds.get(body, 0) + 1
        if found is None:
            failed += 1
            if first_fail < 0:
                first_fail = start - t0
        else:
            after_failed += 1
    elif body == a.text:
        if found is None:
            found = end - t0
    elif found is not None:
        after_other += 1
    time.sleep(max(0.0, a.interval - (time.time() - start)))
print("%.3f %d %.3f %d %d %.0f %d %s" % (found, failed, first_fail, after_failed, after_other,
      longest * 1000, polls, ",".join("%s:%d" % kv for kv in sorted(kinds.items())) or "-"))
PY
# poll ARGS...: the poller's line, or the script fails.
poll() { python3 "$work/poll.py" "$@" || fail "no answer: poll $*"; }
# poll_ahead OUT ARGS...: a poller started before anything is timed, its Python up; it polls
# once told `go_poll T0 [PID]`, and `poll_done OUT [LOG]` waits for it and sets `out` to its
# line (or fails, showing the end of LOG). The same for nua and Docker, so that neither pays
# for starting Python in its timed window.
poll_ahead() {
    local out=$1 _
    shift
    rm -f "$work/poll.ready" "$work/poll.go"
    mkfifo "$work/poll.go"
    python3 "$work/poll.py" --ready "$work/poll.ready" --go "$work/poll.go" "$@" >"$out" &
    poll_pid=$!
    for _ in $(seq 1 1000); do
        [ ! -e "$work/poll.ready" ] || return 0
        kill -0 "$poll_pid" 2>/dev/null || break
        sleep 0.01
    done
    fail "the poller did not start: poll $*"
}
go_poll() { printf '%s\n' "$*" >"$work/poll.go"; }
# settle: before each timed command of measures 2 and 3, nua's and Docker's alike, what the
# previous run left to finish in the background (a container's network namespace torn down,
# written pages flushed) is given a second, so that it is not timed in the next run.
settle() { sync; sleep 1; }
poll_done() {
    local status=0
    wait "$poll_pid" || status=$?
    poll_pid=
    if [ "$status" != 0 ]; then
        [ -z "${2:-}" ] || fail_with "$2" "no answer (the poller's exit status: $status)"
        fail "no answer (the poller's exit status: $status)"
    fi
    out=$(cat "$1")
}

# --- helpers ----------------------------------------------------------------------------------
declare -A R             # R[what] = space-separated values, one per run
rec() { R[$1]+="$2 "; }
med() { local v=${R[$1]:-}; [ -n "$v" ] || { echo n/a; return; }; tr ' ' '\n' <<<"$v" | grep . | median; }
total() { local v=${R[$1]:-}; [ -n "$v" ] || { echo n/a; return; }; tr ' ' '\n' <<<"$v" | grep . | paste -sd+ | bc; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "n/a" && b > 0) printf "%.2f×", a / b; else print "n/a" }'; }
secs() { [ "$1" = n/a ] && echo n/a || echo "$1 s"; }
vals() { local v=${R[$1]:-}; [ -n "$v" ] || { echo n/a; return; }; tr ' ' '\n' <<<"$v" | grep . | xargs printf '%.2f\n' | paste -sd' '; }
declare -A BUSY         # BUSY[command] = the phases it was seen running in
busy() {
    local cmd
    while read -r _ cmd; do
        cmd=$(sed -E 's|^[^ ]*/||' <<<"$cmd" | cut -c1-60)
        [[ "${BUSY[$cmd]:-}" == *"$1"* ]] || BUSY[$cmd]+="${BUSY[$cmd]:+, }$1"
    done < <(pgrep -ax 'cargo|rustc' || true)
}
busy_report() {
    local cmd out=
    for cmd in "${!BUSY[@]}"; do out+="${out:+; }\`$cmd\` (${BUSY[$cmd]})"; done
    echo "$out"
}
# stamp: each line of stdin with the time it came ($EPOCHREALTIME, a space, the line).
stamp() { local l; while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
# at_line FILE T0 REGEX: seconds from T0 to the first stamped line of FILE matching REGEX.
at_line() {
    awk -v t0="$2" -v re="$3" '{ ts = $1; sub(/^[^ ]+ /, ""); if ($0 ~ re) { printf "%.3f", ts - t0; found = 1; exit } }
        END { if (!found) print "n/a" }' "$1"
}
# wait_line FILE REGEX PID SECONDS
wait_line() {
    local n=$(($4 * 10)) _
    for _ in $(seq 1 "$n"); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
count_lines() { grep -cE "$2" "$1" 2>/dev/null || true; }
# step_seconds STEP FILE: the seconds of `STEP done in X s` (or `X ms`) in a build's output.
step_seconds() {
    sed -nE "s/^[0-9.]+ +$1 done in ([0-9.]+) (m?s)\$/\1 \2/p" "$2" | tail -n 1 |
        awk '{ if ($2 == "ms") printf "%.3f", $1 / 1000; else print $1 }'
}
# held_elsewhere TAG: the images of Docker, other than TAG, that hold layers of TAG that are
# not the base's ("image: N layer(s)"), so that a thin load did not send them.
held_elsewhere() {
    local own id
    own=$("$DOCKER" image inspect -f '{{range .RootFS.Layers}}{{.}} {{end}}' "$1" | tr ' ' '\n' |
        grep . | grep -vF -f <(tr ' ' '\n' <<<"$base_diff_ids" | grep . | sed 's/^/sha256:/') || true)
    [ -n "$own" ] || return 0
    id=$(docker_id "$1")
    "$DOCKER" images -aq --no-trunc | sort -u | grep -vx "$id" |
        xargs -r "$DOCKER" image inspect -f '{{.Id}} {{range .RepoTags}}{{.}},{{else}}-{{end}} {{range .RootFS.Layers}}{{.}} {{end}}' |
        while read -r _ names layers; do
            n=$(tr ' ' '\n' <<<"$layers" | grep -cxF -f <(echo "$own") || true)
            [ "$n" = 0 ] || echo "$n $names"
        done | awk -v total="$(wc -l <<<"$own")" '
            $2 != "-" { sub(/,$/, "", $2); tagged = tagged (tagged ? ", " : "") $2 " (" $1 " of " total ")" }
            $2 == "-" { untagged++ }
            END { if (untagged) tagged = tagged (tagged ? " and " : "") untagged " untagged image(s)"; print tagged }'
}

# The fixture's app.py with `GET /` answering __TEXT__; render_to FILE TEXT writes it with TEXT.
cp fixtures/apps/flask-hello/app.py "$work/app.py.in"
sed -i 's|^    return f".*GREETING.*$|    return "__TEXT__\\n"|' "$work/app.py.in"
grep -q __TEXT__ "$work/app.py.in" || fail "fixtures/apps/flask-hello/app.py: no GREETING line to replace"
render_to() { sed "s/__TEXT__/$2/" "$work/app.py.in" >"$1"; }
# new_app DIR ID TEXT: a copy of the fixture with that id and text.
new_app() {
    cp -r fixtures/apps/flask-hello "$1"
    sed -i "s/^id = \"flask-hello\"/id = \"$2\"/" "$1/nua-config.toml"
    grep -q "^id = \"$2\"" "$1/nua-config.toml" || fail "cannot set the id of $1"
    render_to "$1/app.py" "$3"
}
docker_build() { # docker_build DIR TAG ARGS...: BuildKit, quiet; prints the image id
    local dir=$1 tag=$2
    shift 2
    DOCKER_BUILDKIT=1 "$DOCKER" build -q -f benches/apps/flask-hello/Dockerfile \
        --build-arg "EXTRA_CA=$extra_pem" -t "$tag" "$@" "$dir"
}
docker_id() { "$DOCKER" image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
busy "the setup"

# --- the base, for both -----------------------------------------------------------------------
log "base: nua base build python into an empty cache, docker load as $BASE_TAG"
base_before=$(docker_id "$BASE_TAG")
NUA_CACHE_DIR=$work/base-cache "$NUA" base build python -q -t "$BASE_TAG" -o "$work/base.tar" ||
    fail "nua base build python"
"$DOCKER" load -q -i "$work/base.tar" >/dev/null
extra_pem=$(extra_ca "$BASE_TAG")
base_diff_ids=$(python3 - "$work/base.tar" <<'PY'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    config = json.load(t.extractfile(json.load(t.extractfile("manifest.json"))[0]["Config"]))
print(" ".join(d.split(":", 1)[1] for d in config["rootfs"]["diff_ids"]))
PY
)
rm -f "$work/base.tar"
# The warm cache (measures 1 and 2): the base's cache in which the app was built once, which
# also unpacks the base's layers (a build step runs on them) for the cold caches.
log "warm cache: the app built once (untimed)"
cp -al "$work/base-cache" "$work/warm"
new_app "$work/prime" bench-watch-prime prime
NUA_CACHE_DIR=$work/warm "$NUA" build "$work/prime" -q -o "$work/prime.tar" >"$work/prime.log" 2>&1 ||
    fail_with "$work/prime.log" "nua build of the app (priming the cache)"
rm -rf "$work/prime" "$work/prime.tar"
unpacked=0
for d in $base_diff_ids; do [ ! -d "$work/warm/sandbox/layers/$d" ] || unpacked=$((unpacked + 1)); done
# cold_cache DIR: the base only (blobs, layer index, the unpacked layers), and nua's own
# installer (uv, fetched once per cache folder as the warm build fetched it, as a machine keeps
# it; Docker keeps its own tools too).
cold_cache() {
    local d
    rm -rf "$1"
    mkdir -p "$1/sandbox/layers"
    cp -al "$work/base-cache/blobs" "$work/base-cache/layers" "$1/"
    [ ! -d "$work/warm/tools" ] || cp -al "$work/warm/tools" "$1/"
    for d in $base_diff_ids; do
        [ ! -d "$work/warm/sandbox/layers/$d" ] || cp -al "$work/warm/sandbox/layers/$d" "$1/sandbox/layers/"
    done
}

# --- 3. cold ----------------------------------------------------------------------------------
cold_text=cold-$$
new_app "$work/cold" bench-watch-cold "$cold_text"
layers_sent=()
held_by=
for i in $(seq 1 "$RUNS"); do
    busy "measure 3"
    log "cold, run $i of $RUNS: nua run"
    "$DOCKER" rm -f "$COLD_NAME" "$COLD_DOCKER_NAME" >/dev/null 2>&1 || true
    "$DOCKER" rmi "$COLD_TAG" "$COLD_DOCKER_TAG" >/dev/null 2>&1 || true
    cold_cache "$work/cold-cache"
    rm -f "$work/cold.err"
    settle
    poll_ahead "$work/poll.txt" --port-from "$work/cold.err" --text "$cold_text" --timeout 900
    t0=$EPOCHREALTIME
    NUA_CACHE_DIR=$work/cold-cache "$NUA" run "$work/cold" --name "$COLD_NAME" \
        >"$work/cold.out" 2> >(stamp >"$work/cold.err") &
    fg_pid=$!
    go_poll "$t0" "$fg_pid"
    poll_done "$work/poll.txt" "$work/cold.err"
    rec cold_nua "${out%% *}"
    stop "$fg_pid"
    fg_pid=
    layers_sent+=("$(sed -nE 's/^[0-9.]+ loaded [^ ]+ //p' "$work/cold.err" | head -n 1)")
    rec cold_at_deps "$(at_line "$work/cold.err" "$t0" '^dependencies running')"
    rec cold_at_deps_done "$(at_line "$work/cold.err" "$t0" '^dependencies done')"
    rec cold_at_loaded "$(at_line "$work/cold.err" "$t0" '^loaded ')"
    rec cold_at_started "$(at_line "$work/cold.err" "$t0" '^started ')"
    rec cold_nua_deps "$(step_seconds dependencies "$work/cold.err")"
    image_ids+=("$(docker_id "$COLD_TAG")")
    [ "$i" != 1 ] || held_by=$(held_elsewhere "$COLD_TAG" || echo "(could not tell)")
    "$DOCKER" rmi "$COLD_TAG" >/dev/null 2>&1 || true

    log "cold, run $i of $RUNS: docker build --no-cache + docker run"
    "$DOCKER" builder prune -af >/dev/null
    pruned=1
    port=$(free_port)
    settle
    poll_ahead "$work/poll.txt" --port "$port" --text "$cold_text" --timeout 900
    t0=$EPOCHREALTIME
    id=$(docker_build "$work/cold" "$COLD_DOCKER_TAG" --no-cache) || fail "docker build --no-cache"
    "$DOCKER" run -d --name "$COLD_DOCKER_NAME" -p "127.0.0.1:$port:8000" "$COLD_DOCKER_TAG" >/dev/null
    go_poll "$t0"
    poll_done "$work/poll.txt"
    rec cold_docker "${out%% *}"
    image_ids+=("$id")
    "$DOCKER" rm -f "$COLD_DOCKER_NAME" >/dev/null
    "$DOCKER" rmi "$COLD_DOCKER_TAG" >/dev/null 2>&1 || true
done
rm -rf "$work/cold-cache"

# --- 2. nua run after a one-line change -------------------------------------------------------
log "run: v1 and v2 built by nua (untimed), Docker holding v1"
new_app "$work/run" bench-watch-run "run-v1-$$"
NUA_CACHE_DIR=$work/warm "$NUA" build "$work/run" -q -o "$work/v1.tar" -t "$V1" >"$work/build.log" 2>&1 ||
    fail_with "$work/build.log" "nua build v1"
render_to "$work/run/app.py" "run-v2-$$"
NUA_CACHE_DIR=$work/warm "$NUA" build "$work/run" -q -o "$work/v2.tar" >"$work/build.log" 2>&1 ||
    fail_with "$work/build.log" "nua build v2"
"$DOCKER" rmi "$V1" "$V2" >/dev/null 2>&1 || true
"$DOCKER" load -q -i "$work/v1.tar" >/dev/null
rm -f "$work/v1.tar"
for i in $(seq 1 "$RUNS"); do
    busy "measure 2"
    log "run, run $i of $RUNS: nua run"
    "$DOCKER" rm -f "$RUN_NAME" "$RUN_DOCKER_NAME" >/dev/null 2>&1 || true
    "$DOCKER" rmi "$V2" >/dev/null 2>&1 || true
    rm -f "$work/run.err"
    settle
    poll_ahead "$work/poll.txt" --port-from "$work/run.err" --text "run-v2-$$"
    t0=$EPOCHREALTIME
    NUA_CACHE_DIR=$work/warm "$NUA" run "$work/run" --name "$RUN_NAME" >"$work/run.out" 2> >(stamp >"$work/run.err") &
    fg_pid=$!
    go_poll "$t0" "$fg_pid"
    poll_done "$work/poll.txt" "$work/run.err"
    rec run_nua "${out%% *}"
    rec run_at_loaded "$(at_line "$work/run.err" "$t0" '^loaded ')"
    rec run_at_started "$(at_line "$work/run.err" "$t0" '^started ')"
    stop "$fg_pid"
    fg_pid=

    log "run, run $i of $RUNS: docker load + docker run"
    "$DOCKER" rm -f "$RUN_NAME" >/dev/null 2>&1 || true
    "$DOCKER" rmi "$V2" >/dev/null 2>&1 || true
    port=$(free_port)
    settle
    poll_ahead "$work/poll.txt" --port "$port" --text "run-v2-$$"
    t0=$EPOCHREALTIME
    "$DOCKER" load -q -i "$work/v2.tar" >/dev/null
    "$DOCKER" run -d --name "$RUN_DOCKER_NAME" -p "127.0.0.1:$port:8000" "$V2" >/dev/null
    go_poll "$t0"
    poll_done "$work/poll.txt"
    rec run_docker "${out%% *}"
    "$DOCKER" rm -f "$RUN_DOCKER_NAME" >/dev/null
done
"$DOCKER" rmi "$V1" "$V2" >/dev/null 2>&1 || true
rm -f "$work/v2.tar"

# --- 1. edit → new answer ---------------------------------------------------------------------
rename=()
[ "$EDIT" = rename ] && rename=(--rename)
reload_re="^reloaded $EDIT_NAME in "
if [ -n "$has_watch" ]; then
    log "edit: nua run --watch (started once, untimed)"
    new_app "$work/edit" bench-watch-edit edit-0
    NUA_CACHE_DIR=$work/warm "$NUA" run "$work/edit" --watch --name "$EDIT_NAME" \
        >"$work/watch.out" 2>"$work/watch.err" &
    watch_pid=$!
    wait_line "$work/watch.err" '^watching .* for changes' "$watch_pid" 600 ||
        fail_with "$work/watch.err" "nua run --watch: no \`watching ... for changes\`"
    nua_port=$(grep -E '^  web  http://127\.0\.0\.1:[0-9]+ ' "$work/watch.err" | head -n 1 |
        grep -o '127.0.0.1:[0-9]*' | cut -d: -f2 || true)
    [ -n "$nua_port" ] || fail_with "$work/watch.err" "nua run --watch: no line \`  web  http://127.0.0.1:PORT → 8000/tcp\`"
    poll --port "$nua_port" --text edit-0 --t0 "$EPOCHREALTIME" --timeout 120 >/dev/null
    image_ids+=("$(docker_id "$EDIT_TAG")")
fi
log "edit: docker build + run of the first version (untimed)"
new_app "$work/edit-docker" bench-watch-edit edit-0
docker_port=$(free_port)
pruned=1
id=$(docker_build "$work/edit-docker" "$EDIT_DOCKER_TAG") || fail "docker build"
image_ids+=("$id")
"$DOCKER" run -d --name "$EDIT_DOCKER_NAME" -p "127.0.0.1:$docker_port:8000" "$EDIT_DOCKER_TAG" >/dev/null
poll --port "$docker_port" --text edit-0 --t0 "$EPOCHREALTIME" --timeout 120 >/dev/null
last_reload=none
for i in $(seq 1 "$RUNS"); do
    busy "measure 1"
    if [ -n "$has_watch" ]; then
        log "edit, run $i of $RUNS: nua run --watch"
        text=edit-nua-$i-$$
        render_to "$work/next.py" "$text"
        before=$(count_lines "$work/watch.err" "$reload_re")
        kill -0 "$watch_pid" 2>/dev/null || fail_with "$work/watch.err" "nua run --watch has ended"
        out=$(poll --port "$nua_port" --text "$text" --write "$work/next.py" "$work/edit/app.py" "${rename[@]}")
        read -r s failed first after_failed after_other longest polls kinds <<<"$out"
        rec edit_nua "$s"
        rec edit_nua_failed "$failed"
        rec edit_nua_after "$((after_failed + after_other))"
        rec edit_nua_longest "$longest"
        [ "$kinds" = - ] || R[edit_nua_kinds]+="run $i: $kinds; "
        # The reload's own line (it may come after the new text answers).
        for _ in $(seq 1 300); do
            [ "$(count_lines "$work/watch.err" "$reload_re")" -gt "$before" ] && break
            sleep 0.1
        done
        sleep 0.5
        n=$(($(count_lines "$work/watch.err" "$reload_re") - before))
        rec edit_nua_reloads "$n"
        line=$(grep -E "$reload_re" "$work/watch.err" | tail -n 1 || true)
        if [ "$n" -gt 0 ]; then
            last_reload=$line
            rec edit_nua_reported "$(sed -E 's/.* in ([0-9.]+) s.*/\1/' <<<"$line")"
        fi
        image_ids+=("$(docker_id "$EDIT_TAG")")
        sleep 1
    fi

    log "edit, run $i of $RUNS: docker build + rm -f + run"
    text=edit-docker-$i-$$
    render_to "$work/next.py" "$text"
    t0=$EPOCHREALTIME
    if [ "$EDIT" = rename ]; then mv "$work/next.py" "$work/edit-docker/app.py"; else cat "$work/next.py" >"$work/edit-docker/app.py"; fi
    python3 "$work/poll.py" --port "$docker_port" --text "$text" --t0 "$t0" >"$work/poll.txt" &
    poll_pid=$!
    id=$(docker_build "$work/edit-docker" "$EDIT_DOCKER_TAG") || fail "docker build"
    "$DOCKER" rm -f "$EDIT_DOCKER_NAME" >/dev/null
    "$DOCKER" run -d --name "$EDIT_DOCKER_NAME" -p "127.0.0.1:$docker_port:8000" "$EDIT_DOCKER_TAG" >/dev/null
    wait "$poll_pid" || fail "no answer from Docker's container"
    poll_pid=
    image_ids+=("$id")
    read -r s failed first after_failed after_other longest polls kinds <"$work/poll.txt"
    rec edit_docker "$s"
    rec edit_docker_failed "$failed"
    rec edit_docker_after "$((after_failed + after_other))"
    [ "$first" = -1.000 ] || rec edit_docker_down "$(echo "$s - $first" | bc)"
    sleep 1

    # Docker's best case: nothing asks the port while its container is replaced (a poller
    # there makes Docker's proxy take longer to reach the new container), polled once
    # `docker run` has returned.
    log "edit, run $i of $RUNS: docker build + rm -f + run, polled after it"
    text=edit-docker-quiet-$i-$$
    render_to "$work/next.py" "$text"
    t0=$EPOCHREALTIME
    if [ "$EDIT" = rename ]; then mv "$work/next.py" "$work/edit-docker/app.py"; else cat "$work/next.py" >"$work/edit-docker/app.py"; fi
    id=$(docker_build "$work/edit-docker" "$EDIT_DOCKER_TAG") || fail "docker build"
    "$DOCKER" rm -f "$EDIT_DOCKER_NAME" >/dev/null
    "$DOCKER" run -d --name "$EDIT_DOCKER_NAME" -p "127.0.0.1:$docker_port:8000" "$EDIT_DOCKER_TAG" >/dev/null
    python3 "$work/poll.py" --port "$docker_port" --text "$text" --t0 "$t0" >"$work/poll.txt" ||
        fail "no answer from Docker's container"
    image_ids+=("$id")
    read -r s _ <"$work/poll.txt"
    rec edit_docker_quiet "$s"
    sleep 1
done
if [ -n "$watch_pid" ]; then
    stop "$watch_pid"
    watch_pid=
    grep -qE '^(stopped and removed|stopped) ' "$work/watch.err" ||
        log "warning: nua run --watch did not say it stopped and removed $EDIT_NAME; its last lines: $(tail -n 3 "$work/watch.err" | tr '\n' '|')"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report -----------------------------------------------------------------------------------
m() { secs "$(med "$1")"; }
echo
echo "flask-hello (gunicorn, 2 workers); medians of $RUNS; $(nproc) cores; $("$DOCKER" version --format 'Docker {{.Server.Version}} (CLI {{.Client.Version}})'), storage $("$DOCKER" info --format '{{.Driver}}'); $("$NUA" --version)."
busy_seen=$(busy_report)
echo "Load average before $load_before, after $load_after.${busy_seen:+ Measured under load: other jobs were running: $busy_seen.}"
echo
echo "### 1. Edit → new answer, both warm, each serving the previous version"
echo
echo "| from the edit (app.py written) until \`GET /\` answers the new text | seconds | each run | failed polls before it (all runs) | failed or old answers in the 0.5 s after it (all runs) |"
echo "|---|---:|---|---:|---:|"
if [ -n "$has_watch" ]; then
    echo "| \`nua run APP --watch\` (running) | $(m edit_nua) | $(vals edit_nua) | $(total edit_nua_failed) | $(total edit_nua_after) |"
else
    echo "| \`nua run APP --watch\` | n/a (this nua has no \`--watch\`) | | | |"
fi
echo "| \`docker build\` (BuildKit, warm) + \`docker rm -f\` + \`docker run -d -p\` | $(m edit_docker) | $(vals edit_docker) | $(total edit_docker_failed) | $(total edit_docker_after) |"
echo "| the same, polled only once \`docker run\` has returned (Docker's best case) | $(m edit_docker_quiet) | $(vals edit_docker_quiet) | | |"
echo "| **nua / Docker** (target ≤ 0.5×), polled from the edit | $(ratio "$(med edit_nua)" "$(med edit_docker)") | | | |"
echo "| **nua / Docker**, against Docker's best case | $(ratio "$(med edit_nua)" "$(med edit_docker_quiet)") | | | |"
echo
if [ -n "$has_watch" ]; then
    echo "- nua's own \`reloaded\` line: median $(m edit_nua_reported); reload lines per edit: $(echo "${R[edit_nua_reloads]:-}" | xargs); last: \`$last_reload\`."
    echo "- nua's failures by kind: ${R[edit_nua_kinds]:-none}; its longest single poll per run (ms): $(echo "${R[edit_nua_longest]:-}" | xargs)."
fi
echo "- Docker: unreachable from the first failed poll to the new text, median $(m edit_docker_down)."
echo "- The edit: app.py $([ "$EDIT" = rename ] && echo "written beside and renamed over" || echo "rewritten in place"); polls every 10 ms, a new connection each."
echo
echo "### 2. \`nua run APP\` after a one-line change (v2 built; Docker holds v1)"
echo
echo "| to the first answer of v2 | seconds | each run |"
echo "|---|---:|---|"
echo "| \`nua run APP\` (build cache hit, thin load, run) | $(m run_nua) | $(vals run_nua) |"
echo "| \`docker load -i v2.tar\` + \`docker run -d -p\` | $(m run_docker) | $(vals run_docker) |"
echo "| **nua / Docker** (target ≤ 0.8×) | $(ratio "$(med run_nua)" "$(med run_docker)") | |"
echo
echo "- \`nua run\`, from its start (medians): \`loaded\` (build cache hit, thin load) at $(m run_at_loaded), \`started\` at $(m run_at_started), first answer at $(m run_nua)."
echo
echo "### 3. Cold: nothing of the app cached, the base in Docker (and in nua's cache)"
echo
echo "| to the first answer | seconds | each run |"
echo "|---|---:|---|"
echo "| \`nua run APP\` (cache: the base only) | $(m cold_nua) | $(vals cold_nua) |"
echo "| \`docker build --no-cache\` (BuildKit, builder pruned) + \`docker run -d -p\` | $(m cold_docker) | $(vals cold_docker) |"
echo "| **nua / Docker** (target ≤ 0.8×) | $(ratio "$(med cold_nua)" "$(med cold_docker)") | |"
echo
echo "- nua's thin load, per run: $(printf '%s; ' "${layers_sent[@]}" | sed 's/; $//'). Its cache held $unpacked of the base's $(wc -w <<<"$base_diff_ids") layers unpacked; its \`dependencies\` step (uv pip install and byte-compiling, the layer made), median: $(m cold_nua_deps)."
echo "- \`nua run\`, from its start (medians): \`dependencies running\` at $(m cold_at_deps), done at $(m cold_at_deps_done), \`loaded\` at $(m cold_at_loaded), \`started\` at $(m cold_at_started), first answer at $(m cold_nua)."
[ -z "$held_by" ] || echo "- Not quite cold for nua: Docker already held layers of the app (not the base's), which its thin load did not send, through images this script did not make: $held_by."
echo
echo "Reproduce: \`$reproduce\`"
