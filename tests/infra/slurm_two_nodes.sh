#!/usr/bin/env bash
# A two-node Slurm cluster on one machine for tests and CI: nodes es-node0 and es-node1, each a network namespace
# (es-ns0, es-ns1, its own UTS namespace and hostname) on a bridge es-br0 with slurmctld and munged in the root
# namespace. Debian's Slurm (22.05+), as root; the same slurm.conf as tests/infra/slurm_cluster.sh otherwise.
#   bash tests/infra/slurm_two_nodes.sh start            # network, munged, slurmctld, two slurmd; wait until idle
#   bash tests/infra/slurm_two_nodes.sh stop             # daemons, processes left in the namespaces, network: gone
#   bash tests/infra/slurm_two_nodes.sh env              # print `export SLURM_CONF=...`
#   bash tests/infra/slurm_two_nodes.sh on NODE CMD...   # run CMD on a node, as ssh would: mpirun's rsh agent
#   bash tests/infra/slurm_two_nodes.sh pids NODE        # the processes on a node (slurmd, its steps, the ranks)
# Addresses: $SLURM_TWO_NODES_NET.1 (controller), .10 and .11 (default net 10.77.0); state in $SLURM_TWO_NODES_DIR
# (default /tmp/es_hpc-slurm2); ports $SLURM_TWO_NODES_PORT (default 6827, slurmctld) and the next (each slurmd),
# so it runs beside the one-node cluster. Each node's /etc/hosts is /etc/netns/es-nsI/hosts, bound over /etc/hosts.
set -euo pipefail
export SLURM_TEST_DIR=${SLURM_TWO_NODES_DIR:-/tmp/es_hpc-slurm2} SLURM_TEST_PORT=${SLURM_TWO_NODES_PORT:-6827}
# shellcheck source=slurm_cluster.sh
. "$(dirname "${BASH_SOURCE[0]}")/slurm_cluster.sh"   # install, write_conf, start_munge, alive, terminate, die
NET=${SLURM_TWO_NODES_NET:-10.77.0}
NODES=(es-node0 es-node1)
BRIDGE=es-br0
CTL_HOST="$NODE($NET.1)"   # slurmctld checks that the name is its host's
SLURMD_PIDFILE=$DIR/slurmd-%n.pid
SLURMD_LOG=$DIR/log/slurmd-%n.log

index() { case $1 in es-node0) echo 0 ;; es-node1) echo 1 ;; *) die "no node $1 (es-node0, es-node1)" ;; esac; }
netns() { echo "es-ns$1"; }
addr() { echo "$NET.$((10 + $1))"; }
slurmd_pid() { cat "$DIR/slurmd-${NODES[$1]}.pid" 2>/dev/null; }
idle_nodes() { sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l; }

node_lines() {   # CPUS MEM: both nodes (addresses in their namespaces), one partition
    local i
    for i in 0 1; do echo "NodeName=${NODES[i]} NodeAddr=$(addr "$i") CPUs=$1 RealMemory=$2 State=UNKNOWN"; done
    echo "PartitionName=debug Nodes=${NODES[0]},${NODES[1]} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
    # A node whose slurmd is gone is DOWN after 10 s, and its jobs end (NODE_FAIL, requeued if --requeue).
    echo "SlurmdTimeout=10"
}

net_up() {
    ip link add "$BRIDGE" type bridge
    ip addr add "$NET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    local i ns
    for i in 0 1; do
        ns=$(netns "$i")
        ip netns add "$ns"
        ip link add "es-veth$i" type veth peer name eth0 netns "$ns"
        ip link set "es-veth$i" master "$BRIDGE" up
        ip -n "$ns" addr add "$(addr "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        mkdir -p "/etc/netns/$ns"
        printf '127.0.0.1 localhost\n%s %s\n%s %s\n%s %s\n' "$NET.1" "$NODE" "$(addr 0)" "${NODES[0]}" \
            "$(addr 1)" "${NODES[1]}" > "/etc/netns/$ns/hosts"
    done
}

net_down() {   # idempotent: whatever of the network exists goes, with any process still inside it
    local i ns
    for i in 0 1; do
        ns=$(netns "$i")
        if ip netns list | grep -qw "$ns"; then
            ip netns pids "$ns" | xargs -r kill -KILL 2>/dev/null || true
            ip netns del "$ns"
        fi
        ip link del "es-veth$i" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    rmdir /etc/netns 2>/dev/null || true
}

cluster_start() {
    [ "$(id -u)" -eq 0 ] || die "network namespaces need root"
    if alive "$DIR/slurmctld.pid" && [ "$(idle_nodes)" = 2 ]; then log "already running in $DIR"; return; fi
    command -v slurmctld >/dev/null || die "slurmctld not installed (run: bash tests/infra/slurm_cluster.sh install)"
    cluster_stop quiet
    rm -rf "$DIR/log"
    mkdir -p "$DIR"/{state,log} "$DIR/spool/${NODES[0]}" "$DIR/spool/${NODES[1]}"
    net_up
    write_conf
    start_munge
    local t0=$SECONDS i
    slurmctld -c -i >"$DIR/log/slurmctld.out" 2>&1 || die "slurmctld failed to start"
    for i in 0 1; do   # the node's network; its own hostname and /etc/hosts (not ip netns exec: it hides cgroups)
        nsenter --net="/run/netns/$(netns "$i")" unshare --uts --mount sh -c "hostname ${NODES[i]} \
            && mount --bind /etc/netns/$(netns "$i")/hosts /etc/hosts && exec slurmd -N ${NODES[i]}" \
            >"$DIR/log/slurmd-${NODES[i]}.out" 2>&1 || die "slurmd ${NODES[i]} failed to start"
    done
    local timeout=${SLURM_TEST_TIMEOUT:-60}
    while (( SECONDS - t0 < timeout )); do
        if [ "$(idle_nodes)" = 2 ]; then log "nodes ${NODES[*]} idle after $((SECONDS - t0)) s ($DIR)"; return; fi
        scontrol update NodeName="${NODES[0]},${NODES[1]}" State=RESUME >/dev/null 2>&1 || true
        sleep 0.5
    done
    die "nodes not idle after ${timeout}s: $(sinfo -h -N -o '%N %T' 2>&1 | tr '\n' ' ')"
}

cluster_stop() {
    local i pidf
    for i in 0 1; do
        pidf=$DIR/slurmd-${NODES[i]}.pid
        if alive "$pidf"; then terminate "$(cat "$pidf")"; fi
        rm -f "$pidf"
    done
    if alive "$DIR/slurmctld.pid"; then terminate "$(cat "$DIR/slurmctld.pid")"; fi
    rm -f "$DIR/slurmctld.pid"
    net_down
    if [ -f "$DIR/munged.ours" ] && alive /run/munge/munged.pid; then terminate "$(cat /run/munge/munged.pid)"; fi
    rm -f "$DIR/munged.ours"
    [ "${1:-}" = quiet ] || log "stopped ($DIR kept for its logs)"
}

on_node() {   # NODE CMD...: like ssh, the words of CMD joined and run by sh in the node's namespaces (its slurmd's)
    local pid
    pid=$(slurmd_pid "$(index "$1")") || die "$1: no slurmd running"
    shift
    exec nsenter -t "$pid" -n -u -m --wd="$PWD" -- sh -c "$*"
}

case ${1:-} in
    start) cluster_start ;;
    stop) cluster_stop ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    on) (( $# >= 3 )) || die "usage: $0 on NODE CMD..."; shift; on_node "$@" ;;
    pids) ip netns pids "$(netns "$(index "${2:-}")")" ;;
    *) echo "usage: $0 start|stop|env|on NODE CMD...|pids NODE" >&2; exit 2 ;;
esac
