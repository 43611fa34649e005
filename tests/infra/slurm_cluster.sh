#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for tests and CI (Debian/Ubuntu Slurm 22.05+, no systemd, no cgroups).
#   bash tests/infra/slurm_cluster.sh install   # apt: slurmctld slurmd slurm-client munge (idempotent)
#   bash tests/infra/slurm_cluster.sh start     # munged + slurmctld + slurmd, wait until the node is idle
#   bash tests/infra/slurm_cluster.sh stop      # stop the daemons started by `start`
#   bash tests/infra/slurm_cluster.sh env       # print `export SLURM_CONF=...` for sbatch/sinfo/scontrol
# Everything (slurm.conf, state, spool, logs, pid files) lives in $SLURM_TEST_DIR (default /tmp/es_hpc-slurm).
# The daemons run as root (through sudo for other users), jobs as whoever submits them. Ports: $SLURM_TEST_PORT
# (default 6817) and the next one. Tested as root in a Debian bookworm container (Slurm 22.05.8, PID 1 no init).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin
DIR=${SLURM_TEST_DIR:-/tmp/es_hpc-slurm}
PORT=${SLURM_TEST_PORT:-6817}
NODE=$(hostname -s)
export SLURM_CONF=$DIR/slurm.conf
# What write_conf varies: tests/infra/slurm_two_nodes.sh sources this file and sets these, and node_lines, anew.
CTL_HOST="$NODE(127.0.0.1)"
SLURMD_PIDFILE=$DIR/slurmd.pid
SLURMD_LOG=$DIR/log/slurmd.log
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

log() { echo "[slurm_cluster] $*" >&2; }
die() {
    log "error: $*"
    for f in "$DIR"/log/*; do [ -f "$f" ] && { log "--- $f (last 30 lines)"; tail -n 30 "$f" >&2; }; done
    exit 1
}
running() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]; }
alive() { [ -f "$1" ] && running "$(cat "$1")"; }   # the pid file's process exists (and is no zombie)
node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1; }

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null; then
        log "already installed: $(slurmctld -V)"
        return
    fi
    log "apt: slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    # Package scripts must not try to start services (no init system in containers); policy-rc.d forbids it.
    local policy=/usr/sbin/policy-rc.d added=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy" && added=1
    fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
    [ -z "$added" ] || $SUDO rm -f "$policy"
    log "installed: $(slurmctld -V)"
}

write_conf() {
    # Real memory as slurmd measures it, minus a little so the node is never "low RealMemory" invalid.
    local mem
    mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    mem=$(( ${mem:-1024} > 1024 ? ${mem:-1024} - 256 : ${mem:-1024} ))
    local cpus=${SLURM_TEST_CPUS:-$(nproc)}
    cat > "$SLURM_CONF" <<EOF
# One-node test cluster written by tests/infra/slurm_cluster.sh; $DIR holds everything.
ClusterName=es-hpc-test
SlurmctldHost=$CTL_HOST
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$SLURMD_PIDFILE
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$SLURMD_LOG
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups or systemd in containers: track processes through /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
# Cores are the consumable resource, so 2 one-CPU tasks share the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Schedule within seconds, and let a requeued job start again after 5 s (not the default 2 min + a cycle).
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
AuthInfo=cred_expire=5
# The node line below is the truth, whatever hardware slurmd detects (containers report the host's).
SlurmdParameters=config_overrides
ReturnToService=2
# Keep finished jobs visible to scontrol for 10 minutes (there is no accounting database for sacct).
MinJobAge=600
KillWait=30
InactiveLimit=0
MailProg=/bin/true
$(node_lines "$cpus" "$mem")
EOF
}

node_lines() {   # CPUS MEM: the node and partition lines of slurm.conf
    echo "NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$1 RealMemory=$2 State=UNKNOWN"
    echo "PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi   # a munged already answers
    local key=/etc/munge/munge.key
    if [ ! -s "$key" ]; then
        $SUDO mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then $SUDO mungekey --create --keyfile="$key"
        else $SUDO dd if=/dev/urandom of="$key" bs=1024 count=1 status=none; fi
    fi
    $SUDO mkdir -p /run/munge /var/log/munge /var/lib/munge
    # munged runs as the key's owner: munge when the package made the key, root otherwise.
    local owner
    owner=$(stat -c %U "$key")
    $SUDO chown "$owner" /run/munge /var/log/munge /var/lib/munge "$key"
    $SUDO chmod 0400 "$key"
    $SUDO chmod 0755 /run/munge
    if [ "$owner" = root ]; then $SUDO munged --force
    elif [ -z "$SUDO" ]; then runuser -u "$owner" -- munged --force
    else sudo -u "$owner" munged --force; fi
    touch "$DIR/munged.ours"   # `stop` stops only a munged that `start` started
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.2
    done
    die "munged does not answer (see /var/log/munge/munged.log)"
}

start() {
    if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
        case $(node_state) in idle | mix* | alloc* | compl*)   # up, maybe running jobs: leave it as it is
            log "already running in $DIR (node $NODE $(node_state))"; return ;;
        esac
    fi
    command -v slurmctld >/dev/null || die "slurmctld not installed (run: bash $0 install)"
    stop quiet   # a half-started cluster from before: start over
    local port
    for port in "$PORT" $((PORT + 1)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port is in use (another Slurm? stop it, or choose SLURM_TEST_PORT)"
        fi
    done
    rm -rf "$DIR/log"
    mkdir -p "$DIR"/{state,log} "$DIR/spool/$NODE"
    write_conf
    start_munge
    local t0=$SECONDS
    $SUDO slurmctld -c -i >"$DIR/log/slurmctld.out" 2>&1 || die "slurmctld failed to start"   # -c: fresh state
    $SUDO slurmd >"$DIR/log/slurmd.out" 2>&1 || die "slurmd failed to start"
    local state="" timeout=${SLURM_TEST_TIMEOUT:-60}
    while (( SECONDS - t0 < timeout )); do
        state=$(node_state)
        case $state in
            idle) alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" || die "a daemon exited"
                log "node $NODE idle after $((SECONDS - t0)) s ($DIR)"; return ;;
            down* | drain* | fail*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        if (( SECONDS - t0 >= 3 )); then   # the daemons have had time to write their pid files
            alive "$DIR/slurmctld.pid" || die "slurmctld exited"
            alive "$DIR/slurmd.pid" || die "slurmd exited"
        fi
        sleep 0.5
    done
    die "node $NODE not idle after ${timeout}s (state: ${state:-no answer from slurmctld});" \
        "$(scontrol show node "$NODE" 2>&1 | grep -o 'Reason=.*' || true)"
}

terminate() {   # SIGTERM, up to 10 s to exit, then SIGKILL
    $SUDO kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 100); do running "$1" || return 0; sleep 0.1; done
    log "pid $1 ignores SIGTERM: SIGKILL"
    $SUDO kill -KILL "$1" 2>/dev/null || true
}

stop() {
    local pidf
    for pidf in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
        if alive "$pidf"; then terminate "$(cat "$pidf")"; fi
        $SUDO rm -f "$pidf"
    done
    if [ -f "$DIR/munged.ours" ] && alive /run/munge/munged.pid; then terminate "$(cat /run/munge/munged.pid)"; fi
    rm -f "$DIR/munged.ours"
    [ "${1:-}" = quiet ] || log "stopped ($DIR kept for its logs)"
}

[ "${BASH_SOURCE[0]}" = "$0" ] || return 0   # sourced (slurm_two_nodes.sh): the functions only
case ${1:-} in
    install) install ;;
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
esac
