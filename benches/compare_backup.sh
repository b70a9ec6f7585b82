#!/usr/bin/env bash
# `nua backup` (a verified snapshot in a restic repository) and `nua restore` against the
# usual cron lines, `pg_dump | gzip > file` and `tar | gzip > file`, on one instance of the
# pg-counter fixture (Nua's postgres-15) with a managed volume, in one run:
#
#   benches/compare_backup.sh                        # SIZE_MIB=1024: ~1 GiB of rows, of files
#   SIZE_MIB=256 benches/compare_backup.sh           # quicker
#   NUA=/path/to/nua SIZE_MIB=64 RUNS=1 benches/compare_backup.sh   # that binary, no cargo
#
# RUNS (default 1, the data being large): medians of RUNS, each run from an empty repository.
# STEP_TIMEOUT (default 1800 s): a command running longer is stopped and the script fails,
# saying where nua and restic were waiting. RESTIC_PROGRESS_FPS: see the workaround below.
#
# The database: a table `bench` of SIZE_MIB of rows as pg_dump prints them (an id and four
# md5 strings, so gzip gets about 1.75:1 and no more), with a primary key.
#   - `nua backup LABEL --component database --json`: wall time, its dump (pg_dump -Fc
#     streamed into `restic backup --stdin`) and verify (a scratch PostgreSQL, the snapshot
#     read back and pg_restore'd into it, row counts compared) times from the JSON, the dump's
#     size (`bytes`), restic's `data_added` (`added`) and what `du -sb` of the repository grew
#     by; against `docker exec DB pg_dump -Fc > file` (nua's dump alone), `pg_dump -Fc | gzip >
#     file` and `pg_dump | gzip > file`.
#   - Again after 1 % new rows appended (they go to the end of the table), then after an
#     UPDATE of 1 % of the rows spread over it (`id % 100 = run - 1`): what restic's
#     deduplication makes of each; the file dumps are their full size every time.
#   - Not nua, to show where its time goes: `pg_dump -Fc` and `pg_dump -Fc -Z0` (no
#     compression) to /dev/null inside the container, and `pg_dump -Fc -Z0 | restic backup
#     --stdin` (restic compresses, zstd) into a repository of its own, at each step.
#   - `nua restore LABEL --component database` of the last backup (it takes a verified safety
#     backup of what is there first, whose dump and verify times are shown, then stops the
#     app, loads a new database swapped in by renames, and starts the app again).
# The volume (`nua-LABEL-files`): SIZE_MIB of files written by a helper container of the
# app's image: a quarter in small text files of 0.5-16 KiB, a quarter in files of 0.25-2 MiB
# (half random, half base64 text), half in 4 large random files.
#   - `nua backup LABEL --component nua-LABEL-files --json` (a tar stream from a helper
#     container into `restic backup --stdin`, verified by unpacking it in a scratch container
#     and comparing the trees) against `tar -C MOUNTPOINT -cf - . | gzip > file`, and, not
#     nua, `restic backup MOUNTPOINT` (restic reading the files itself), then the same after
#     every 100th file is rewritten and 1 % of each large file is overwritten in place.
# Where nua's time goes (first backup of each): from Docker's events of the containers
# involved (the dump's exec, the scratch container's creation, its load, its removal).
# Peak memory of each `nua` command: its own VmHWM (polled every 50 ms, the last value read
# before it exits) and GNU time's %M (the largest of nua and the restic processes it waits
# for; pg_dump, tar and pg_restore run in containers and are counted nowhere).
#
# Wall clock of GNU time, page cache warm: after each change the table is checkpointed, synced
# and read once (untimed); the files were just written and synced. Prints Markdown tables.
#
# Needs: a Docker daemon (`scripts/test-env.sh setup` starts one), restic, GNU time, python3,
# bc, root (the volume's mount point is read from the host). Uses the tests' cache
# (~/.cache/nua-tests/nua-cache) as a hard-linked copy when it is there. Runs nua with its
# state, cache and restic repository in a temp dir, NUA_PROXY=none, NUA_ACME=off and
# NUA_PORT_RANGE=9500-9599; removes the instance with its volumes, any scratch container and
# the temp dir on exit. Disk: about 8 x SIZE_MIB.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-1}
STEP_TIMEOUT=${STEP_TIMEOUT:-1800}
# Workaround: nua reads the standard output of `restic backup --json` only once the stream has
# ended, so once restic's progress lines (several a second) fill the 64 KiB pipe, restic stops
# reading its input and the backup hangs (after about 50 s of upload here). One progress line
# a minute keeps it from happening; `RESTIC_PROGRESS_FPS= benches/compare_backup.sh` runs
# without the workaround.
export RESTIC_PROGRESS_FPS=${RESTIC_PROGRESS_FPS-0.0167}
log() { echo "compare_backup: $*" >&2; }

[ -x /usr/bin/time ] || apt_install time
command -v restic >/dev/null || apt_install restic
if [ -z "${NUA:-}" ]; then
    cargo build --release --locked --bin nua >&2
    NUA=$PWD/target/release/nua
fi
work=$(mktemp -d)
LABEL=bench-backup
DB=nua-$LABEL-database
APP=nua-$LABEL
VOLUME=nua-$LABEL-files
cleanup() {
    "$NUA" remove "$LABEL" --volumes >/dev/null 2>&1 || true
    for filter in "label=nua.scratch=$LABEL" "label=nua.instance=$LABEL"; do
        docker ps -aq --filter "$filter" | xargs -r docker rm -f -v >/dev/null 2>&1 || true
    done
    docker volume rm "$VOLUME" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

shared=${XDG_CACHE_HOME:-$HOME/.cache}/nua-tests/nua-cache
if [ -d "$shared/blobs" ]; then cp -al "$shared" "$work/cache"; else mkdir -p "$work/cache"; fi
export NUA_CACHE_DIR=$work/cache NUA_STATE_DIR=$work/state NUA_PROXY=none NUA_ACME=off \
    NUA_PORT_RANGE=9500-9599
REPO=$NUA_STATE_DIR/backups
# The repository of the restic-alone rows (not nua's).
ALT=$work/alt
RESTIC="env RESTIC_PASSWORD=bench-only RESTIC_CACHE_DIR=$work/alt-cache restic -r $ALT"

cat >"$work/deploy.toml" <<EOF
[[site]]
image = "$PWD/fixtures/apps/pg-counter"
label = "$LABEL"

[[site.volume]]
name = "files"
target = "/data"
EOF
log "deploying pg-counter with a volume (builds the images when the cache lacks them)"
"$NUA" deploy "$work/deploy.toml" -q >&2

# measure CMD...: runs CMD (stdout to $work/out, stderr to $work/err); sets LAST_T (wall s),
# LAST_RSS (KiB, GNU time's %M), LAST_OWN (KiB, CMD's own VmHWM, polled every 50 ms), T0 and
# T1 (the epoch seconds around it). A command still running after STEP_TIMEOUT seconds is
# stopped, after saying where it and its children wait.
measure() {
    local tpid cpid= k v state own=0 started=$SECONDS
    T0=$(now)
    /usr/bin/time -o "$work/time" -f '%e %M' "$@" >"$work/out" 2>"$work/err" &
    tpid=$!
    while :; do
        state=
        while read -r k v _; do [ "$k" = State: ] && state=$v; done 2>/dev/null <"/proc/$tpid/status" || true
        [ -n "$state" ] && [ "$state" != Z ] || break
        [ -n "$cpid" ] || cpid=$(pgrep -P "$tpid" | head -n 1 || true)
        if [ -n "$cpid" ]; then
            while read -r k v _; do [ "$k" = VmHWM: ] && own=$v; done 2>/dev/null <"/proc/$cpid/status" || true
        fi
        if ((SECONDS - started > STEP_TIMEOUT)) && [ -n "$cpid" ]; then
            log "still running after ${STEP_TIMEOUT} s: $*; where its threads and children wait:"
            for p in "$cpid" $(pgrep -P "$cpid"); do
                for t in /proc/"$p"/task/*; do
                    echo "  $p $(cat "/proc/$p/comm") $(cat "$t/wchan") syscall $(cut -d' ' -f1,2 "$t/syscall")"
                done 2>/dev/null | sort -u -k2 >&2
            done
            kill "$cpid"
        fi
        sleep 0.05
    done
    wait "$tpid" || fail "$*"
    T1=$(now)
    read -r LAST_T LAST_RSS < <(tail -n 1 "$work/time")
    LAST_OWN=$own
}
fail() {
    log "FAILED: $*"
    tail -n 40 "$work/out" "$work/err" >&2 || true
    exit 1
}
dir_bytes() { if [ -d "$1" ]; then du -sb "$1" | cut -f1; else echo 0; fi; }
mib() { [ "$1" = – ] && { echo –; return; }; echo "scale=1; $1 / 1048576" | bc | sed 's/^\./0./; s/^-\./-0./'; }
kib_mib() { [ "$1" = – ] && { echo –; return; }; echo "scale=1; $1 / 1024" | bc | sed 's/^\./0./'; }
# A field of the one component of the backup `nua backup --json` printed (in $work/out).
part() {
    python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))[0]
assert b["status"] == "verified", b
print(b["components"][0][sys.argv[2]])' "$work/out" "$1"
}
psql_db() {
    docker exec -i "$DB" sh -c 'exec psql -X -q -A -t -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
}

declare -A R # R[key] = space-separated values, one per run
rec() { R[$1]+="$2 "; }
med() { [ -n "${R[$1]:-}" ] || { echo "–"; return; }; printf '%s\n' ${R[$1]} | median; }
medi() { [ -n "${R[$1]:-}" ] || { echo "–"; return; }; printf '%s\n' ${R[$1]} | median | cut -d. -f1; }

# phases KIND: where the time of the `nua backup` just measured went, from Docker's events of
# the instance's database and of the scratch and helper containers; recorded as ph.KIND.*.
phases() {
    local kind=$1
    {
        docker events --since "$T0" --until "$T1" --format '{{json .}}' --filter "label=nua.scratch=$LABEL"
        docker events --since "$T0" --until "$T1" --format '{{json .}}' --filter "container=$DB"
    } >"$work/events"
    while read -r key value; do rec "ph.$kind.$key" "$value"; done < <(
        python3 - "$kind" "$LAST_T" "$work/events" <<'EOF'
import json, sys
kind, total = sys.argv[1], float(sys.argv[2])
execs, boxes = {}, {}
for line in open(sys.argv[3]):
    e = json.loads(line)
    t, action, attrs = e["timeNano"] / 1e9, e["Action"], e["Actor"]["Attributes"]
    name = attrs.get("name", "")
    if action.startswith("exec_"):
        x = execs.setdefault(attrs["execID"], {"box": name, "cmd": ""})
        if action.startswith("exec_start"):
            x["cmd"], x["start"] = action, t
        elif action == "exec_die":
            x["end"] = t
    elif action in ("create", "destroy"):
        boxes.setdefault(name, {})[action] = t
def run(box, text):
    found = [x for x in execs.values() if x["box"] == box and text in x["cmd"] and "end" in x]
    return min(found, key=lambda x: x["start"])
made = sorted((b["create"], n) for n, b in boxes.items() if "create" in b and "destroy" in b)
if kind == "db":
    dump = run(next(x["box"] for x in execs.values() if "pg_export_snapshot" in x["cmd"]), "pg_export_snapshot")
    box = next(n for _, n in made if "-verify-" in n)
    load = run(box, "head -c")
    rest = [("dump", dump["end"] - dump["start"]),
            ("ready", load["start"] - boxes[box]["create"]),
            ("load", load["end"] - load["start"]),
            ("after", boxes[box]["destroy"] - load["end"])]
else:
    first, second = made[0][1], made[1][1]
    dump = run(first, "tar --numeric-owner")
    load = run(second, "head -c")
    reread = [x for x in execs.values() if x["box"] == second and "tar --numeric-owner" in x["cmd"]
              and "head -c" not in x["cmd"] and "end" in x][0]
    rest = [("helper", dump["start"] - boxes[first]["create"]),
            ("dump", dump["end"] - dump["start"]),
            ("ready", load["start"] - boxes[second]["create"]),
            ("load", load["end"] - load["start"]),
            ("reread", reread["end"] - reread["start"]),
            ("after", boxes[second]["destroy"] - reread["end"])]
for key, value in rest:
    print(key, f"{value:.2f}")
print("other", f"{total - sum(v for _, v in rest):.2f}")
EOF
    )
}

# nua_backup KEY COMPONENT [PHASES]: one `nua backup`, its numbers recorded under KEY.
nua_backup() {
    local key=$1 component=$2 before
    before=$(dir_bytes "$REPO")
    measure "$NUA" backup "$LABEL" --component "$component" --json
    rec "$key.t" "$LAST_T"
    rec "$key.dump" "$(echo "scale=2; $(part dump_ms) / 1000" | bc)"
    rec "$key.verify" "$(echo "scale=2; $(part verify_ms) / 1000" | bc)"
    rec "$key.bytes" "$(part bytes)"
    rec "$key.added" "$(part added)"
    rec "$key.du" "$(($(dir_bytes "$REPO") - before))"
    rec "$key.own" "$LAST_OWN"
    rec "$key.rss" "$LAST_RSS"
    log "  $key: ${LAST_T} s, $(part verified), dump $(part bytes) B, added $(part added) B, own RSS $LAST_OWN KiB"
    [ -z "${3:-}" ] || phases "$3"
}
# peer KEY FILE SCRIPT: `sh -c SCRIPT` writing FILE, timed; FILE's size recorded.
peer() {
    local key=$1 file=$2 script=$3
    measure sh -c "$script"
    rec "$key.t" "$LAST_T"
    rec "$key.bytes" "$(stat -c %s "$file")"
    log "  $key: ${LAST_T} s, $(stat -c %s "$file") B"
}
# alt KEY SCRIPT: `sh -c SCRIPT` running `restic backup --json` into $ALT, timed.
alt() {
    local key=$1 script=$2 before
    [ -d "$ALT" ] || $RESTIC init -q >&2
    before=$(dir_bytes "$ALT")
    measure sh -c "$script"
    rec "$key.t" "$LAST_T"
    rec "$key.rss" "$LAST_RSS"
    rec "$key.du" "$(($(dir_bytes "$ALT") - before))"
    read -r bytes added < <(python3 -c 'import json,sys
s=[json.loads(l) for l in open(sys.argv[1]) if "summary" in l][0]
print(s["total_bytes_processed"], s["data_added"])' "$work/out")
    rec "$key.bytes" "$bytes"
    rec "$key.added" "$added"
    log "  $key: ${LAST_T} s, read $bytes B, added $added B"
}
IN_DB="docker exec $DB sh -c"
PG='exec pg_dump -U "$POSTGRES_USER" "$POSTGRES_DB"'
pg_peers() {
    local when=$1
    peer "$when.fc" "$work/db.pgdump" "$IN_DB '$PG --format=custom' >$work/db.pgdump"
    rm -f "$work/db.pgdump"
    peer "$when.fcgz" "$work/db.pgdump.gz" "$IN_DB '$PG --format=custom' | gzip >$work/db.pgdump.gz"
    rm -f "$work/db.pgdump.gz"
    peer "$when.sqlgz" "$work/db.sql.gz" "$IN_DB '$PG' | gzip >$work/db.sql.gz"
    rm -f "$work/db.sql.gz"
}
alt_pg() {
    alt "$1.z0" "$IN_DB '$PG --format=custom --compress=0' | $RESTIC backup --json --stdin --stdin-filename database.pgdump"
}
# After a change of the table: written out (PostgreSQL's checkpoint, then the host's page cache)
# so that no write-back competes with the next measurement, and read once (untimed) so that
# every tool reads it from the page cache.
settle() {
    echo "CHECKPOINT;" | psql_db
    sync
    echo "SELECT count(*) FROM bench;" | psql_db >/dev/null
}
new_rows() { # FROM TO
    echo "INSERT INTO bench SELECT g, md5(random()::text), md5(random()::text), md5(random()::text), md5(random()::text) FROM generate_series($1, $2) g;"
}

# --- the database ---------------------------------------------------------------------------
# pg_dump prints a row as `id<TAB>md5<TAB>md5<TAB>md5<TAB>md5`: about 139 bytes.
rows=$((SIZE_MIB * 1048576 / 139))
log "writing $rows rows into $DB"
echo "CREATE TABLE bench (id bigint NOT NULL, a text NOT NULL, b text NOT NULL, c text NOT NULL, d text NOT NULL);" | psql_db
batch=500000
for ((from = 1; from <= rows; from += batch)); do
    new_rows "$from" $((from + batch - 1 < rows ? from + batch - 1 : rows)) | psql_db
done
echo "ALTER TABLE bench ADD PRIMARY KEY (id); VACUUM ANALYZE bench;" | psql_db
settle
table_bytes=$(echo "SELECT pg_total_relation_size('bench');" | psql_db)

for run in $(seq 1 "$RUNS"); do
    log "database, run $run of $RUNS"
    # Each run starts from empty repositories, and a table with no free space in its pages
    # (so that appended rows go to its end).
    rm -rf "$REPO" "$NUA_STATE_DIR/restic-cache" "$ALT"
    [ "$run" = 1 ] || { echo "VACUUM FULL bench; ANALYZE bench;" | psql_db; settle; }
    nua_backup db.first database db
    pg_peers first
    measure $IN_DB "$PG --format=custom >/dev/null"
    rec null.fc "$LAST_T"
    measure $IN_DB "$PG --format=custom --compress=0 >/dev/null"
    rec null.z0 "$LAST_T"
    alt_pg first
    n=$(echo "SELECT max(id) FROM bench;" | psql_db)
    log "  appending $((rows / 100)) rows"
    { new_rows $((n + 1)) $((n + rows / 100)); echo "VACUUM ANALYZE bench;"; } | psql_db
    settle
    nua_backup db.append database
    alt_pg append
    log "  updating 1 % of the rows (id % 100 = $((run - 1)))"
    echo "UPDATE bench SET a = md5(a || '$run') WHERE id % 100 = $((run - 1)); VACUUM ANALYZE bench;" | psql_db
    settle
    nua_backup db.update database
    pg_peers update
    alt_pg update
    count=$(echo "SELECT count(*) FROM bench;" | psql_db)
    log "  restoring the database"
    before=$(dir_bytes "$REPO")
    measure "$NUA" restore "$LABEL" --component database
    rec restore.t "$LAST_T"
    rec restore.own "$LAST_OWN"
    rec restore.rss "$LAST_RSS"
    rec restore.du "$(($(dir_bytes "$REPO") - before))"
    safety=$(sed -n 's/.*what was there before is backup \([0-9]*\).*/\1/p' "$work/out")
    [ -n "$safety" ] || fail "nua restore named no safety backup"
    read -r sdump sverify < <("$NUA" backups "$LABEL" --json | python3 -c '
import json, sys
b = [b for b in json.load(sys.stdin) if b["id"] == int(sys.argv[1])][0]
assert b["reason"] == "safety" and b["status"] == "verified", b
p = b["components"][0]
print(p["dump_ms"] / 1000, p["verify_ms"] / 1000)' "$safety")
    rec restore.sdump "$sdump"
    rec restore.sverify "$sverify"
    [ "$(echo "SELECT count(*) FROM bench;" | psql_db)" = "$count" ] || fail "the restore lost rows"
    log "  restore: ${LAST_T} s (safety backup $safety: dump $sdump s, verify $sverify s)"
done
echo "DROP TABLE bench; VACUUM; CHECKPOINT;" | psql_db

# --- the volume -----------------------------------------------------------------------------
mountpoint=$(docker volume inspect -f '{{.Mountpoint}}' "$VOLUME")
log "writing $SIZE_MIB MiB of files into $VOLUME"
docker exec -i -u root "$APP" python3 - "$SIZE_MIB" /data <<'EOF'
import base64, os, random, sys
total, root = int(sys.argv[1]) * 1048576, sys.argv[2]
rng = random.Random(1)
KiB, MiB = 1024, 1048576
def text(n):
    return base64.encodebytes(rng.randbytes(n * 3 // 4 + 4))[:n]
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
budget, i = total // 4, 0
while budget > 0:
    n = min(budget, rng.randint(512, 16 * KiB))
    write(f"{root}/small/{i // 100:04d}/{i:06d}.txt", text(n))
    budget, i = budget - n, i + 1
budget, j = total // 4, 0
while budget > 0:
    n = min(budget, rng.randint(256 * KiB, 2 * MiB))
    write(f"{root}/medium/{j:04d}.bin", rng.randbytes(n) if j % 2 else text(n))
    budget, j = budget - n, j + 1
each = (total - 2 * (total // 4)) // 4
os.makedirs(f"{root}/large", exist_ok=True)
for k in range(4):
    with open(f"{root}/large/{k}.bin", "wb") as f:
        for at in range(0, each, 4 * MiB):
            f.write(rng.randbytes(min(4 * MiB, each - at)))
print(f"compare_backup: {i} small, {j} medium, 4 large files", file=sys.stderr)
EOF
sync
# The change: every 100th file (sorted paths, from the run's offset) rewritten with new content
# of its size and kind, and 1 % of each large file overwritten in place.
change_files() {
    docker exec -i -u root "$APP" python3 - /data "$1" <<'EOF'
import base64, os, random, sys
root, offset = sys.argv[1], int(sys.argv[2])
rng = random.Random(100 + offset)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
changed = 0
for k, path in enumerate(files):
    size = os.path.getsize(path)
    if "/large/" in path:
        n = size // 100
        with open(path, "r+b") as f:
            f.seek(rng.randrange(0, size - n))
            f.write(rng.randbytes(n))
        changed += n
    elif k % 100 == offset:
        data = rng.randbytes(size)
        if path.endswith(".txt") or int(os.path.basename(path)[:4]) % 2 == 0:
            data = base64.encodebytes(data)[:size]
        with open(path, "wb") as f:
            f.write(data)
        changed += size
print(f"compare_backup: {changed} bytes changed", file=sys.stderr)
EOF
    sync
}
for run in $(seq 1 "$RUNS"); do
    log "volume, run $run of $RUNS"
    rm -rf "$REPO" "$NUA_STATE_DIR/restic-cache" "$ALT"
    nua_backup vol.first "$VOLUME" vol
    peer vol.first.tgz "$work/vol.tar.gz" "tar -C $mountpoint -cf - . | gzip >$work/vol.tar.gz"
    rm -f "$work/vol.tar.gz"
    alt vol.first.files "$RESTIC backup --json --host bench $mountpoint"
    change_files $((run - 1))
    nua_backup vol.update "$VOLUME"
    peer vol.update.tgz "$work/vol.tar.gz" "tar -C $mountpoint -cf - . | gzip >$work/vol.tar.gz"
    rm -f "$work/vol.tar.gz"
    alt vol.update.files "$RESTIC backup --json --host bench $mountpoint"
done
volume_bytes=$(du -sb "$mountpoint" | cut -f1)
file_count=$(find "$mountpoint" -type f | wc -l)

# --- the tables -----------------------------------------------------------------------------
n="median of $RUNS"
[ "$RUNS" = 1 ] && n="one run"
nua_row() { # KEY LABEL
    echo "| $2 | $(med "$1.t") | $(med "$1.dump") | $(med "$1.verify") | $(mib "$(medi "$1.bytes")") | $(mib "$(medi "$1.added")") | $(mib "$(medi "$1.du")") | $(kib_mib "$(medi "$1.own")") / $(kib_mib "$(medi "$1.rss")") |"
}
peer_row() { # KEY LABEL
    echo "| $2 | $(med "$1.t") | | | $(mib "$(medi "$1.bytes")") | | | |"
}
alt_row() { # KEY LABEL
    echo "| $2 | $(med "$1.t") | | | $(mib "$(medi "$1.bytes")") | $(mib "$(medi "$1.added")") | $(mib "$(medi "$1.du")") | – / $(kib_mib "$(medi "$1.rss")") |"
}
head="| wall s | dump s | verify s | dump or file MiB | restic added MiB | repository grew MiB (du) | peak RSS MiB, nua / with restic |"
echo
echo "Database: $rows rows of ~139 bytes (then 1 % more), table and index $(mib "$table_bytes") MiB on disk; $n."
echo
echo "| database, SIZE_MIB=$SIZE_MIB $head"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
nua_row db.first "\`nua backup --component database\`, empty repository"
peer_row first.fc "\`pg_dump -Fc > file\`"
peer_row first.fcgz "\`pg_dump -Fc \\| gzip > file\`"
peer_row first.sqlgz "\`pg_dump \\| gzip > file\`"
alt_row first.z0 "(not nua) \`pg_dump -Fc -Z0 \\| restic backup --stdin\`"
nua_row db.append "\`nua backup\` after 1 % more rows appended"
alt_row append.z0 "(not nua) \`pg_dump -Fc -Z0 \\| restic backup --stdin\`, same"
nua_row db.update "\`nua backup\` after an UPDATE of 1 % of the rows (id % 100)"
peer_row update.fc "\`pg_dump -Fc > file\`, same"
peer_row update.fcgz "\`pg_dump -Fc \\| gzip > file\`, same"
peer_row update.sqlgz "\`pg_dump \\| gzip > file\`, same"
alt_row update.z0 "(not nua) \`pg_dump -Fc -Z0 \\| restic backup --stdin\`, same"
echo "| \`nua restore --component database\` (its safety backup: dump $(med restore.sdump) s, verify $(med restore.sverify) s) | $(med restore.t) | | | | | $(mib "$(medi restore.du)") | $(kib_mib "$(medi restore.own)") / $(kib_mib "$(medi restore.rss)") |"
echo
echo "Volume: $(mib "$volume_bytes") MiB in $file_count files; $n."
echo
echo "| volume, SIZE_MIB=$SIZE_MIB $head"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
nua_row vol.first "\`nua backup --component $VOLUME\`, empty repository"
peer_row vol.first.tgz "\`tar -cf - . \\| gzip > file\`"
alt_row vol.first.files "(not nua) \`restic backup MOUNTPOINT\`"
nua_row vol.update "\`nua backup\` after every 100th file rewritten, 1 % of each large file"
peer_row vol.update.tgz "\`tar -cf - . \\| gzip > file\`, same"
alt_row vol.update.files "(not nua) \`restic backup MOUNTPOINT\`, same"
echo
echo "Where the time of the first \`nua backup\` went (s, from Docker's events; $n):"
echo
echo "| database, SIZE_MIB=$SIZE_MIB | s |"
echo "|---|---:|"
echo "| pg_dump -Fc in the container, streamed into restic | $(med ph.db.dump) |"
echo "| scratch PostgreSQL created, started, ready | $(med ph.db.ready) |"
echo "| restic dump \\| pg_restore into it (verification) | $(med ph.db.load) |"
echo "| row counts, scratch container removed | $(med ph.db.after) |"
echo "| the rest (nua's start, restic init and opening, state, restic's commit) | $(med ph.db.other) |"
echo "| total | $(med db.first.t) |"
echo "| (not nua) \`pg_dump -Fc > /dev/null\` in the container | $(med null.fc) |"
echo "| (not nua) \`pg_dump -Fc -Z0 > /dev/null\` in the container | $(med null.z0) |"
echo
echo "| volume, SIZE_MIB=$SIZE_MIB | s |"
echo "|---|---:|"
echo "| helper container created and started | $(med ph.vol.helper) |"
echo "| tar in the helper, streamed into restic (and hashed by nua) | $(med ph.vol.dump) |"
echo "| a second helper created and started (verification) | $(med ph.vol.ready) |"
echo "| restic dump \\| tar -x in it (verification) | $(med ph.vol.load) |"
echo "| tar -c of what was unpacked, back to nua, hashed | $(med ph.vol.reread) |"
echo "| helper removed | $(med ph.vol.after) |"
echo "| the rest (nua's start, restic init and opening, state, restic's commit) | $(med ph.vol.other) |"
echo "| total | $(med vol.first.t) |"
