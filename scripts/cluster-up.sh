#!/usr/bin/env bash
# A whole microcash cluster on loopback: 3 nats-server nodes (JetStream, 3 replicas),
# PostgreSQL (run as the postgres user: initdb refuses root), N verifier workers and P
# partition owners. Everything lives under $MICROCASH_CLUSTER_DIR (default
# /tmp/microcash-cluster); `down` stops it all and removes the directory.
#
#   scripts/cluster-up.sh up [--workers N] [--partitions P] [--params DIR]
#   scripts/cluster-up.sh down
#   scripts/cluster-up.sh status
#   scripts/cluster-up.sh kill nats|worker|partition I     # kill -9 one process
#   scripts/cluster-up.sh start nats|worker|partition I    # (re)start one process
#
# After `up`, `. $MICROCASH_CLUSTER_DIR/env` sets MICROCASH_NATS and MICROCASH_POSTGRES for
# `microcash cluster submit`. Debian packages needed: nats-server, postgresql.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${MICROCASH_CLUSTER_DIR:-/tmp/microcash-cluster}
BIN=${MICROCASH_BIN:-$ROOT/target/release/microcash}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
NATS_PORT0=${MICROCASH_NATS_PORT:-14222}
PG_PORT=${MICROCASH_PG_PORT:-15432}
METRICS_PORT0=${MICROCASH_METRICS_PORT:-19100}
NATS_URLS="nats://127.0.0.1:$NATS_PORT0,nats://127.0.0.1:$((NATS_PORT0 + 1)),nats://127.0.0.1:$((NATS_PORT0 + 2))"
PG_CONN="host=127.0.0.1 port=$PG_PORT user=postgres dbname=microcash"

die() { echo "cluster-up: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found (Debian package $2)"; }

pidfile() { echo "$DIR/pids/$1-$2"; }
alive() { local f; f=$(pidfile "$1" "$2"); [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null; }

wait_for() { # what, seconds, command…
    local what=$1 secs=$2; shift 2
    for _ in $(seq $((secs * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    die "$what did not come up in $secs s (logs: $DIR/logs)"
}

nats_conf() {
    local i=$1 routes="" j
    for j in 0 1 2; do
        [[ $j == "$i" ]] && continue
        routes+="${routes:+, }nats-route://127.0.0.1:$((NATS_PORT0 + 100 + j))"
    done
    cat > "$DIR/nats-$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:$((NATS_PORT0 + i))
http: 127.0.0.1:$((NATS_PORT0 + 200 + i))
max_payload: 8MB
jetstream {
  store_dir: "$DIR/nats-$i"
  max_memory_store: 256MB
  max_file_store: 8GB
}
cluster {
  name: microcash
  listen: 127.0.0.1:$((NATS_PORT0 + 100 + i))
  routes: [ $routes ]
}
EOF
}

start_nats() {
    local i=$1
    alive nats "$i" && return 0
    nats-server -c "$DIR/nats-$i.conf" >> "$DIR/logs/nats-$i.log" 2>&1 &
    echo $! > "$(pidfile nats "$i")"
}

start_worker() {
    local i=$1
    alive worker "$i" && return 0
    MICROCASH_NATS=$NATS_URLS MICROCASH_POSTGRES=$PG_CONN RUST_LOG=${RUST_LOG:-info} \
        "$BIN" worker --store "$DIR/store" --name "worker-$i" --threads "${WORKER_THREADS:-0}" \
        --metrics-addr "127.0.0.1:$((METRICS_PORT0 + i))" >> "$DIR/logs/worker-$i.log" 2>&1 &
    echo $! > "$(pidfile worker "$i")"
}

start_partition() {
    local p=$1
    alive partition "$p" && return 0
    MICROCASH_NATS=$NATS_URLS MICROCASH_POSTGRES=$PG_CONN RUST_LOG=${RUST_LOG:-info} \
        "$BIN" partition --id "$p" --dir "$DIR/partition-$p" \
        --metrics-addr "127.0.0.1:$((METRICS_PORT0 + 50 + p))" >> "$DIR/logs/partition-$p.log" 2>&1 &
    echo $! > "$(pidfile partition "$p")"
}

stop_one() { # kind index signal
    local f; f=$(pidfile "$1" "$2")
    if [[ -f $f ]]; then
        kill "-$3" "$(cat "$f")" 2>/dev/null || true
        # Reap it if it is our child; wait for it to be gone either way.
        for _ in $(seq 100); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.05; done
        rm -f "$f"
    fi
}

# PostgreSQL refuses to run as root: as root, run it as the postgres user; otherwise as
# whoever runs this script.
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_ctl_() { as_pg "$PG_BIN/pg_ctl" -D "$DIR/pg" "$@"; }

up() {
    local workers=2 partitions=4 params="$ROOT/datasets/samples/mixed.params"
    while [[ $# -gt 0 ]]; do
        case $1 in
            --workers) workers=$2; shift 2 ;;
            --partitions) partitions=$2; shift 2 ;;
            --params) params=$2; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    need nats-server nats-server
    [[ -x $PG_BIN/initdb ]] || die "PostgreSQL's initdb not found (Debian package postgresql)"
    [[ -x $BIN ]] || (cd "$ROOT" && cargo build --release --bin microcash)
    [[ -e $DIR ]] && die "$DIR exists: run '$0 down' first"
    local port
    for port in "$PG_PORT" "$NATS_PORT0" "$((NATS_PORT0 + 1))" "$((NATS_PORT0 + 2))"; do
        if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
            die "port $port is in use (another cluster still running? MICROCASH_CLUSTER_DIR=… $0 down)"
        fi
    done
    mkdir -p "$DIR/pids" "$DIR/logs"
    chmod 755 "$DIR"
    echo "$workers $partitions" > "$DIR/shape"

    for i in 0 1 2; do nats_conf "$i"; start_nats "$i"; done
    for i in 0 1 2; do
        wait_for "nats-server $i" 20 curl -sf "http://127.0.0.1:$((NATS_PORT0 + 200 + i))/healthz?js-enabled-only=true"
    done

    mkdir -p "$DIR/pg" && chmod 700 "$DIR/pg" && touch "$DIR/logs/postgres.log"
    if [[ $(id -u) == 0 ]]; then chown postgres:postgres "$DIR/pg" "$DIR/logs/postgres.log"; fi
    as_pg "$PG_BIN/initdb" -D "$DIR/pg" -A trust -U postgres > "$DIR/logs/initdb.log" 2>&1
    pg_ctl_ -l "$DIR/logs/postgres.log" \
        -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $DIR/pg -c fsync=on" -w start > /dev/null
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres microcash

    # The cluster needs a JetStream meta leader before it creates streams.
    wait_for "JetStream meta leader" 30 "$BIN" cluster init --nats "$NATS_URLS" --postgres "$PG_CONN" \
        --store "$DIR/store" --params "$params" --partitions "$partitions" --replicas 3

    for ((i = 0; i < workers; i++)); do start_worker "$i"; done
    for ((p = 0; p < partitions; p++)); do start_partition "$p"; done
    cat > "$DIR/env" <<EOF
export MICROCASH_NATS='$NATS_URLS'
export MICROCASH_POSTGRES='$PG_CONN'
EOF
    echo "cluster up in $DIR: 3 nats nodes, postgres :$PG_PORT, $workers workers, $partitions partitions"
    echo "  . $DIR/env && $BIN cluster submit BATCH --wait 600"
}

down() {
    [[ -d $DIR ]] || return 0
    local f
    for f in "$DIR"/pids/*; do
        [[ -e $f ]] || continue
        kill -9 "$(cat "$f")" 2>/dev/null || true
        rm -f "$f"
    done
    if [[ -f $DIR/pg/postmaster.pid ]]; then pg_ctl_ -m immediate stop > /dev/null 2>&1 || true; fi
    rm -rf "$DIR"
    echo "cluster down"
}

status() {
    local f
    for f in "$DIR"/pids/*; do
        [[ -e $f ]] || continue
        local name; name=$(basename "$f")
        if kill -0 "$(cat "$f")" 2>/dev/null; then echo "$name up"; else echo "$name DOWN"; fi
    done
}

case ${1:-} in
    up) shift; up "$@" ;;
    down) down ;;
    status) status ;;
    kill) stop_one "$2" "$3" 9 ;;
    start)
        case $2 in
            nats) start_nats "$3" ;;
            worker) start_worker "$3" ;;
            partition) start_partition "$3" ;;
            *) die "start nats|worker|partition I" ;;
        esac ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
esac
