#!/usr/bin/env bash
# The paper sweep as a Slurm job array of 8 shards. Submit from the repository's root:
#   sbatch examples/cluster/slurm-array.sh
# then, when every task has ended (or chain it: sbatch --dependency=afterok:<jobid> ...):
#   routereval-engine merge results/shard-*.jsonl --format markdown -o results/paper.md --plots results/plots
#SBATCH --job-name=routereval-sweep
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=results/slurm-%A-%a.out
set -euo pipefail
export SHARDS=${SLURM_ARRAY_TASK_COUNT:-8}
exec "$(dirname "$0")/shard.sh"
