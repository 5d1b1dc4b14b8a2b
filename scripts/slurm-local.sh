#!/usr/bin/env bash
# A throwaway single-node SLURM 22.05 cluster on this machine, to try the workflow's SLURM
# profile (workflow/profiles/slurm) without a real cluster; the tests marked `slurm` use it.
#
#   scripts/slurm-local.sh install                 # Debian packages (apt-get; root)
#   scripts/slurm-local.sh start DIR [--no-gpus]   # root: slurmd starts jobs as their user
#   export SLURM_CONF=DIR/etc/slurm.conf           # for sbatch, squeue, sinfo, snakemake
#   scripts/slurm-local.sh stop DIR                # ends its jobs and daemons, by PID
#
# Daemons: munged, mariadbd (so that sacct works), slurmdbd, slurmctld, slurmd, each run in
# the foreground of a background process whose PID is kept in DIR/pids/<name>.pid; `stop`
# ends exactly those (and the processes of jobs still running). Their state lives under DIR
# (config, munge key, spool, logs, database; ports are chosen free), with one exception:
# the link /run/slurm/conf -> DIR/etc, which `stop` removes. The executor plugin's job step
# runs `srun` with every SLURM_* variable removed, SLURM_CONF included, and srun then looks
# for /etc/slurm/slurm.conf and next /run/slurm/conf/slurm.conf (where a "configless"
# slurmd keeps its copy). Hence one such cluster at a time, and none on a machine that has
# /etc/slurm/slurm.conf. Nothing is written to /etc or /var.
#
# The node has every CPU of this machine, partitions `cpu` (default) and `gpu`, account
# `myproject` (README's example runs unchanged) and, unless --no-gpus, two stand-in GPUs
# (gres.conf names links to /dev/null as their devices): `--gpus=1` jobs are accepted and
# scheduled but find no CUDA, so they run on the CPU. With --no-gpus there is only partition `cpu`
# and no GPU at all, like a CPU-only cluster: `--gpus` is refused there.
set -euo pipefail

PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # start order; stop goes backwards
ACCOUNT=myproject

die() { echo "slurm-local: $*" >&2; exit 1; }
log() { echo "slurm-local: $*" >&2; }

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

install_packages() {
    [ "$(id -u)" -eq 0 ] || die "install needs root (apt-get)"
    # Debian's postinst scripts would start the packaged services with their /etc configs;
    # a policy-rc.d that denies it (as in containers) keeps them stopped. Ours only if none.
    local policy=/usr/sbin/policy-rc.d own_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    local rc=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${PACKAGES[@]}" >/dev/null; } || rc=$?
    [ -z "$own_policy" ] || rm -f "$policy"
    [ "$rc" -eq 0 ] || die "apt-get install ${PACKAGES[*]} failed (rc $rc)"
}

# --- start -----------------------------------------------------------------------------

CONF_LINK=/run/slurm/conf

link_config() {  # /run/slurm/conf -> DIR/etc, for srun inside jobs (see the top)
    [ ! -e /etc/slurm/slurm.conf ] || die "/etc/slurm/slurm.conf exists: srun inside jobs" \
        "would read that cluster's config, not this one's; use a machine without it"
    if [ -L "$CONF_LINK" ]; then
        local other
        other=$(readlink "$CONF_LINK")
        if [ "$other" != "$DIR/etc" ] && [ -n "$(pid_of slurmctld "${other%/etc}")" ]; then
            die "a local cluster already runs from ${other%/etc}:" \
                "'scripts/slurm-local.sh stop ${other%/etc}' first"
        fi
    elif [ -e "$CONF_LINK" ]; then
        die "$CONF_LINK exists and is not a link of ours (a configless slurmd's?): remove it first"
    fi
    mkdir -p "$(dirname "$CONF_LINK")"
    ln -sfn "$DIR/etc" "$CONF_LINK"
}

free_ports() {  # N distinct TCP ports free on 127.0.0.1 right now
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

spawn() {  # spawn NAME CMD...: run CMD in the background, its PID in pids/NAME.pid
    local name=$1; shift
    "$@" >>"$DIR/log/$name.out" 2>&1 </dev/null &
    echo $! >"$DIR/pids/$name.pid"
}

wait_for() {  # wait_for WHAT SECONDS CMD...: until CMD succeeds, or fail naming the log
    local what=$1 seconds=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "$what did not come up in ${seconds}s; see $DIR/log/"
        sleep 0.2
    done
}

write_configs() {
    local host=$1 gpus=$2 ctld_port=$3 slurmd_port=$4 dbd_port=$5 db_port=$6 db_pass=$7
    local hw
    # the node line as slurmd sees this machine (CPUs, sockets, cores, memory)
    hw=$(slurmd -C | head -1 | sed "s/^NodeName=[^ ]*/NodeName=$host/")
    local gres_line="" partitions="PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP"
    # a cluster without GPUs knows no GPU gres at all, like most CPU clusters: sbatch then
    # answers --gpus with "Invalid generic resource (gres) specification"
    local gres_types="# no GresTypes: no GPUs"
    if [ "$gpus" -gt 0 ]; then
        gres_line="Gres=gpu:$gpus"
        gres_types=$'GresTypes=gpu\n# sacct shows each job\'s GPUs (ReqTRES)\nAccountingStorageTRES=gres/gpu'
        partitions+=$'\n'"PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP"
    fi
    cat >"$DIR/etc/slurm.conf" <<EOF
# written by scripts/slurm-local.sh for a throwaway cluster in $DIR
ClusterName=clrepro-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket.2
StateSaveLocation=$DIR/spool/slurmctld
SlurmdSpoolDir=$DIR/spool/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
PlugStackConfig=$DIR/etc/plugstack.conf
# no cgroups, no systemd: plain process tracking, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# finished jobs stay visible to squeue for 5 minutes (SLURM's default): the executor
# plugin's squeue status mode needs that (see README, "Running on a cluster")
MinJobAge=300
KillWait=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
# for slurmdbd connections this names the munge socket, not a password
AccountingStoragePass=$DIR/munge/munge.socket.2
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
# sacct shows the executor plugin's comment (rule, wildcards)
AccountingStoreFlags=job_comment
$gres_types
$hw $gres_line NodeAddr=127.0.0.1 State=UNKNOWN
$partitions
EOF
    # Stand-in GPUs. SLURM 22.05's gres/gpu drops a GPU declared by Count alone ("Removing
    # file-less GPU"), and slurmd wants each File= to be a device: links to /dev/null are,
    # and nothing opens them (task/none constrains no devices).
    { echo "AutoDetect=off"
      if [ "$gpus" -gt 0 ]; then
          local i
          for ((i = 0; i < gpus; i++)); do ln -sfn /dev/null "$DIR/dev/gpu$i"; done
          echo "NodeName=$host Name=gpu File=$DIR/dev/gpu[0-$((gpus - 1))]"
      fi; } >"$DIR/etc/gres.conf"
    : >"$DIR/etc/plugstack.conf"
    # slurmdbd reads slurmdbd.conf beside $SLURM_CONF; it holds a password: root only
    (umask 077; cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket.2
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
EOF
    )
}

start_database() {
    local db_port=$1 db_pass=$2
    local sock=$DIR/run/mariadbd.sock
    mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root \
        --auth-root-authentication-method=socket --skip-test-db >>"$DIR/log/mariadbd.out" 2>&1 \
        || die "mariadb-install-db failed; see $DIR/log/mariadbd.out"
    spawn mariadbd mariadbd --no-defaults --datadir="$DIR/mysql" --user=root \
        --socket="$sock" --port="$db_port" --bind-address=127.0.0.1 --skip-name-resolve \
        --pid-file="$DIR/run/mariadbd.pid" --tmpdir="$DIR/run" --log-error="$DIR/log/mariadbd.log" \
        --innodb-buffer-pool-size=32M --performance-schema=off
    wait_for mariadbd 60 mariadb-admin --no-defaults --socket="$sock" -u root ping
    mariadb --no-defaults --socket="$sock" -u root <<EOF
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
}

start() {
    DIR=$1; shift
    local gpus=2
    case "${1:-}" in --no-gpus) gpus=0 ;; "") ;; *) usage ;; esac
    [ "$(id -u)" -eq 0 ] || die "start needs root: slurmd runs jobs as the user who submits them (try sudo)"
    local tool
    for tool in munged mungekey mariadbd mariadb-install-db slurmdbd slurmctld slurmd sbatch sacctmgr; do
        command -v "$tool" >/dev/null || die "$tool not found: run 'scripts/slurm-local.sh install' first"
    done
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    local name
    for name in "${DAEMONS[@]}"; do
        [ -z "$(pid_of "$name")" ] || die "$DIR has a cluster running: 'scripts/slurm-local.sh stop $DIR' first"
    done
    # a cluster of ours that was stopped: start afresh (only the paths this script makes)
    rm -rf "${DIR:?}"/{etc,dev,munge,pids,run,log,spool,mysql,env}
    # munged insists that everyone can reach its socket directory, up to /
    chmod 755 "$DIR"
    mkdir -p "$DIR"/{etc,dev,munge,pids,run,log,spool/slurmctld,spool/slurmd,mysql}
    chmod 755 "$DIR/munge"
    local host ports db_pass
    host=$(hostname -s)
    read -r ctld_port slurmd_port dbd_port db_port <<<"$(free_ports 4)"
    db_pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    export SLURM_CONF=$DIR/etc/slurm.conf
    link_config
    write_configs "$host" "$gpus" "$ctld_port" "$slurmd_port" "$dbd_port" "$db_port" "$db_pass"

    mungekey --create --keyfile="$DIR/etc/munge.key" 2>>"$DIR/log/munged.out"
    spawn munged munged --foreground --key-file="$DIR/etc/munge.key" \
        --socket="$DIR/munge/munge.socket.2" --pid-file="$DIR/run/munged.pid" \
        --log-file="$DIR/log/munged.log" --seed-file="$DIR/run/munged.seed"
    wait_for munged 20 munge -n -S "$DIR/munge/munge.socket.2"

    start_database "$db_port" "$db_pass"
    spawn slurmdbd slurmdbd -D
    wait_for slurmdbd 60 sacctmgr -n show cluster
    sacctmgr -i add cluster clrepro-local >/dev/null
    sacctmgr -i add account "$ACCOUNT" Description="clrepro test account" Organization=clrepro >/dev/null
    local user
    for user in root ${SUDO_USER:-}; do
        sacctmgr -i add user "$user" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null
    done

    spawn slurmctld slurmctld -D -i
    wait_for slurmctld 60 scontrol ping
    spawn slurmd slurmd -D -N "$host"
    wait_for "slurmd (node $host idle)" 60 node_idle
    echo "SLURM_CONF=$SLURM_CONF" >"$DIR/env"
    log "cluster up in $DIR ($([ "$gpus" -gt 0 ] && echo "partitions cpu, gpu; $gpus stand-in GPUs" || echo "partition cpu; no GPUs"))"
    echo "export SLURM_CONF=$SLURM_CONF"
}

node_idle() { sinfo -h -N -o %T | grep -qx idle; }

# --- stop ------------------------------------------------------------------------------

pid_of() {  # pid_of NAME [DIR]: the live PID of a daemon started in DIR, or nothing
    local file=${2:-$DIR}/pids/$1.pid pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    # only if that PID still runs that program (PIDs are reused)
    if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$1" ]; then echo "$pid"; fi
}

job_pids() {  # jobs' batch processes left after scancel: they carry our SLURM_CONF and a job id
    local environ pid
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}; pid=${pid%/environ}
        grep -qzxF "SLURM_CONF=$DIR/etc/slurm.conf" "$environ" 2>/dev/null || continue
        grep -qz '^SLURM_JOB_ID=' "$environ" 2>/dev/null && echo "$pid"
    done
    return 0
}

stop() {
    DIR=$(cd "$1" && pwd) || die "no such directory: $1"
    export SLURM_CONF=$DIR/etc/slurm.conf
    # jobs first, while slurmctld and slurmd can still end them cleanly
    if [ -n "$(pid_of slurmctld)" ] && [ -n "$(pid_of slurmd)" ]; then
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086  # job ids, one word each
            scancel $jobs 2>/dev/null || true
            local deadline=$((SECONDS + 20))
            while [ -n "$(squeue -h -t running,completing -o %i 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do
                sleep 0.5
            done
        fi
    fi
    local pid
    for pid in $(job_pids); do kill -KILL "$pid" 2>/dev/null || true; done
    local i name
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        name=${DAEMONS[$i]}
        pid=$(pid_of "$name")
        if [ -n "$pid" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            local deadline=$((SECONDS + 30))
            while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
            if kill -0 "$pid" 2>/dev/null; then
                log "$name ($pid) ignored SIGTERM for 30s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        rm -f "$DIR/pids/$name.pid"
    done
    if [ "$(readlink "$CONF_LINK" 2>/dev/null)" = "$DIR/etc" ]; then
        rm -f "$CONF_LINK"
        rmdir "$(dirname "$CONF_LINK")" 2>/dev/null || true
    fi
    log "stopped the cluster in $DIR"
}

case "${1:-}" in
    install) install_packages ;;
    start) [ $# -ge 2 ] || usage; shift; start "$@" ;;
    stop) [ $# -eq 2 ] || usage; stop "$2" ;;
    *) usage ;;
esac
