#!/usr/bin/env sh
# One shard of a sweep, for any scheduler: the shard index comes from Kubernetes
# (JOB_COMPLETION_INDEX) or Slurm (SLURM_ARRAY_TASK_ID), the shard count from SHARDS (or Slurm's
# SLURM_ARRAY_TASK_COUNT). Each shard appends its evaluations to RESULTS_DIR/shard-I.jsonl as
# they finish, so a pod evicted or a job requeued carries on where it stopped (--resume).
#
# Settings (environment):
#   ENGINE       the engine binary                       [routereval-engine]
#   CONFIG       the run configuration                    [configs/paper.toml]
#   DATA         the datasets (a directory of *_router_dataset.pkl; empty: the embedded data)
#                                                          [data/synth-suite]
#   RESULTS_DIR  where shard-I.jsonl and shard-I.log go    [results]
#   SHARDS       how many shards                          [SLURM_ARRAY_TASK_COUNT, else 8]
#   THREADS      worker threads                            [SLURM_CPUS_PER_TASK, else all cores]
set -eu
index=${JOB_COMPLETION_INDEX:-${SLURM_ARRAY_TASK_ID:-}}
if [ -z "$index" ]; then
    echo "shard.sh: neither JOB_COMPLETION_INDEX (Kubernetes) nor SLURM_ARRAY_TASK_ID (Slurm) is set" >&2
    exit 2
fi
shards=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:-8}}
engine=${ENGINE:-routereval-engine}
config=${CONFIG:-configs/paper.toml}
data=${DATA-data/synth-suite}
out=${RESULTS_DIR:-results}
threads=${THREADS:-${SLURM_CPUS_PER_TASK:-}}
mkdir -p "$out"
set -- --config "$config" --shard "$index/$shards" --results "$out/shard-$index.jsonl" --resume \
    --progress --format json -o "$out/shard-$index.json"
[ -n "$data" ] && set -- "$@" --dataset "$data"
[ -n "$threads" ] && set -- "$@" --threads "$threads"
# Exit status 1 means some evaluations failed: they are recorded (with their errors) like any
# other result, so the shard is done; only 2 (a usage, config or data error) fails the job.
status=0
"$engine" "$@" 2>>"$out/shard-$index.log" || status=$?
[ "$status" -le 1 ] || exit "$status"
