#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for recipes/launch.slurm's tests (and CI).
#
#   tools/slurm-localhost.sh install   # Debian's slurm-wlm daemons and munge (apt-get; root)
#   tools/slurm-localhost.sh start     # configure for localhost under $HANDBOOK_SLURM_DIR, start munged,
#                                      # slurmctld and slurmd; prints "export SLURM_CONF=…" last
#   tools/slurm-localhost.sh stop      # stop the daemons this script started
#
# The cluster is one node "localhost" with this machine's CPUs and memory, one partition, no cgroups
# (proctrack/linuxproc, task/none), so it also runs in containers. Everything it writes (config, state,
# logs, munge socket) lives in $HANDBOOK_SLURM_DIR (default ~/.cache/handbook/slurm); /etc is not touched
# except for the munge key the munge package creates. Daemons run as root (SlurmUser=root): sbatch jobs
# run as the submitting user.
set -euo pipefail

dir="${HANDBOOK_SLURM_DIR:-$HOME/.cache/handbook/slurm}"
conf="$dir/slurm.conf"

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  mkdir -p "$dir/ctld" "$dir/spool" "$dir/munge"
  chmod 755 "$dir"
  # munge: its own socket and pid under $dir; the key from the Debian package.
  if [[ ! -f /etc/munge/munge.key ]]; then
    (command -v mungekey >/dev/null && mungekey --create) || create-munge-key -f
  fi
  if ! running "$dir/munge/munged.pid"; then
    chown munge:munge "$dir/munge" 2>/dev/null || true
    munged --force --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
      --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
  fi
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  cat >"$conf" <<CONF
ClusterName=handbook
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=${HANDBOOK_SLURMCTLD_PORT:-6817}
SlurmdPort=${HANDBOOK_SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  export SLURM_CONF="$conf"
  running "$dir/slurmctld.pid" || slurmctld -f "$conf"
  running "$dir/slurmd.pid" || slurmd -f "$conf" -N localhost
  # Ready when the node takes jobs.
  for _ in $(seq 1 60); do
    state=$(sinfo -h -N -n localhost -o '%t' 2>/dev/null || true)
    if [[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]]; then
      echo "export SLURM_CONF=$conf"
      return
    fi
    sleep 0.5
  done
  echo "slurm-localhost: the node did not come up (state: ${state:-none}); see $dir/*.log" >&2
  tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  exit 1
}

stop() {
  for p in slurmd slurmctld munge/munged; do
    if running "$dir/$p.pid"; then
      kill "$(cat "$dir/$p.pid")" || true
    fi
  done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
