#!/usr/bin/env bash
# Re-integrate a large stream on a Slurm cluster: split it into N shards, re-integrate them in
# an array job, then join the shards and merge them with partialator in a dependent job.
# Run with --help for usage.
set -euo pipefail

PROG=${0##*/}
# shellcheck disable=SC2034  # used by require_tools in common.sh
INSTALL_HINT='run this on a Slurm submit host with streamfilter installed (and CrystFEL, or --setup "module load crystfel")'
# shellcheck source=/dev/null  # common.sh is checked on its own
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<EOF
Usage: $PROG -i IN.stream -o PREFIX -n N -y POINTGROUP [options] [-- PARTIALATOR_OPTIONS...]

Re-integrate IN.stream on a Slurm cluster:

  1. streamfilter split IN.stream -n N -o WORKDIR/shard     (here, on the submit host)
       -> WORKDIR/shard-000.stream ... shard-<N-1>.stream, each a complete stream
  2. sbatch --array=0-<N-1>: task i runs
       streamfilter reintegrate WORKDIR/shard-<iii>.stream -o WORKDIR/reint-<iii>.stream \\
           --data-root <directory of IN.stream> [--data-root DIR...] -j CPUS \\
           [re-integration options below]
  3. sbatch --dependency=afterok:<array job>: one job runs
       streamfilter cat WORKDIR/reint-000.stream ... -o PREFIX.stream
       partialator -i PREFIX.stream -o PREFIX.hkl -y POINTGROUP -j CPUS [PARTIALATOR_OPTIONS]

The merge job starts only if every array task succeeded, and a task succeeds only if it
re-integrated every chunk with crystals of its shard: a chunk whose frame cannot be read
(moved data, wrong --data-root, geometry or mask path) makes reintegrate exit with status 3
(listed in WORKDIR/reint-<iii>.stream.failed), or 2 when no chunk could be re-integrated,
so the array job fails and the merge job never runs.  --allow-failed N|P% tolerates that
many failed chunks per task; --strict makes every such chunk an error at once.  Since a
shard lives in WORKDIR, --data-root always points the tasks at the original stream's
directory, where the frames named by relative 'Image filename' lines are found; add
--data-root for frames elsewhere.  All paths handed to the jobs are absolute.
Job logs go to WORKDIR/logs/; partialator writes its diagnostics (partialator.params,
pr-logs/) into the directory you submit from.  Under --dry-run the array job's id is shown
as JOBID.

Required:
  -i, --input FILE        input stream (a file)
  -o, --output PREFIX     final outputs PREFIX.stream and PREFIX.hkl (+ .hkl1, .hkl2)
  -n, --ntasks N          number of shards = array tasks (mind the cluster's MaxArraySize)
  -y, --symmetry PG       merging point group for partialator (not needed with --no-merge)

Slurm options (applied to both jobs):
      --partition NAME    partition (default: the cluster's default)
      --time T            time limit per job, e.g. 02:00:00
      --mem M             memory per job, e.g. 8G
      --cpus-per-task C   CPUs per job (default 4); also -j of reintegrate and partialator
      --max-running K     run at most K array tasks at once (--array=0-<N-1>%K)
      --sbatch-arg ARG    extra sbatch argument, repeatable (e.g. --sbatch-arg=--account=abc)
      --setup CMD         shell command run first in each job, repeatable, e.g.
                          --setup '. /etc/profile; module load crystfel/0.12.0'
                          (jobs run under /bin/sh; by default they inherit this shell's
                          environment, PATH included)

Re-integration options (passed to every task):
      --method M          profile (default), robust or crystfel
      --int-radius R1,R2,R3
                          ring radii in pixels (default: the stream's own)
      --background MODEL  background model of --method robust: radial (default), plane
                          or mean
  -g, --geometry FILE     geometry file (default: the one in the stream)
      --data-root DIR     another directory where the frames are looked for, repeatable
                          (after the input stream's own directory)
      --allow-failed N|P% a task still succeeds with up to N chunks (or P% of its chunks
                          with crystals) not re-integrated (default: none)
      --strict            a frame that cannot be read fails the task at once

Other:
      --workdir DIR       shards, per-task outputs and logs (default: PREFIX-shards)
      --no-merge          the dependent job only joins the shards (no partialator)
      --dry-run           print every command (one per line, shell-quoted), run nothing
  -h, --help              show this help and exit
  --                      everything after it is passed to partialator unchanged

Example:
  $PROG -i run.stream -o reint/run -n 64 -y 4/mmm --partition short --time 01:00:00 \\
      --mem 8G --cpus-per-task 8 --sbatch-arg=--account=p1234 \\
      --setup 'module load crystfel/0.12.0' -- --model=unity --iterations=1
EOF
}

# submit CMD...: run an 'sbatch --parsable' command and set job_id to the id it returns
# (to JOBID under --dry-run, after printing the command).
submit() {
    local out
    if ((dry_run)); then
        quote_cmd "$@"
        job_id=JOBID
        return 0
    fi
    printf '+ %s\n' "$(quote_cmd "$@")" >&2
    out=$("$@")
    out=${out%%;*}  # --parsable prints "jobid[;cluster]"
    [[ $out =~ ^[0-9]+$ ]] || die "sbatch did not return a job id (got '$out')"
    job_id=$out
}

# Quote words for /bin/sh (the --wrap script): single quotes unless plainly safe.
sh_quote() {
    local word out=''
    for word in "$@"; do
        if [[ ! $word =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then
            word="'${word//\'/\'\\\'\'}'"
        fi
        out+="${out:+ }$word"
    done
    printf '%s' "$out"
}

abspath() {
    if [[ $1 == /* ]]; then printf '%s' "$1"; else printf '%s/%s' "$PWD" "${1#./}"; fi
}

input='' prefix='' ntasks='' symmetry='' partition='' time_limit='' mem='' cpus=4
max_running='' method='' int_radius='' background='' geometry='' workdir='' merge=1
dry_run=0 job_id='' allow_failed='' strict=0
sbatch_extra=() setup=() partialator_opts=() data_roots=()

while (($# > 0)); do
    case $1 in
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;  # --opt=value -> --opt value
    esac
    case $1 in
    -h | --help) usage; exit 0 ;;
    --dry-run) dry_run=1 ;;
    -i | --input) need_value "$@"; input=$2; shift ;;
    -o | --output) need_value "$@"; prefix=$2; shift ;;
    -n | --ntasks) need_value "$@"; ntasks=$2; shift ;;
    -y | --symmetry) need_value "$@"; symmetry=$2; shift ;;
    --partition) need_value "$@"; partition=$2; shift ;;
    --time) need_value "$@"; time_limit=$2; shift ;;
    --mem) need_value "$@"; mem=$2; shift ;;
    --cpus-per-task) need_value "$@"; cpus=$2; shift ;;
    --max-running) need_value "$@"; max_running=$2; shift ;;
    --sbatch-arg) need_value "$@"; sbatch_extra+=("$2"); shift ;;
    --setup) need_value "$@"; setup+=("$2"); shift ;;
    --method) need_value "$@"; method=$2; shift ;;
    --int-radius) need_value "$@"; int_radius=$2; shift ;;
    --background) need_value "$@"; background=$2; shift ;;
    -g | --geometry) need_value "$@"; geometry=$2; shift ;;
    --data-root) need_value "$@"; data_roots+=("$2"); shift ;;
    --allow-failed) need_value "$@"; allow_failed=$2; shift ;;
    --strict) strict=1 ;;
    --workdir) need_value "$@"; workdir=$2; shift ;;
    --no-merge) merge=0 ;;
    --) shift; partialator_opts=("$@"); break ;;
    -*) die "unknown option '$1' (partialator options go after --; see --help)" ;;
    *) die "unexpected argument '$1' (the input stream is given with -i; see --help)" ;;
    esac
    shift
done

[[ -n $input ]] || die "missing required -i IN.stream (see --help)"
[[ -n $prefix ]] || die "missing required -o PREFIX (see --help)"
[[ -n $ntasks ]] || die "missing required -n N (number of array tasks; see --help)"
is_count "$ntasks" || die "-n needs a positive integer, not '$ntasks'"
((merge == 0)) || [[ -n $symmetry ]] || die "missing required -y POINTGROUP (or --no-merge)"
is_count "$cpus" || die "--cpus-per-task needs a positive integer, not '$cpus'"
[[ -z $max_running ]] || is_count "$max_running" ||
    die "--max-running needs a positive integer, not '$max_running'"
case $method in
'' | crystfel | robust | profile) ;;
*) die "--method must be profile, robust or crystfel, not '$method'" ;;
esac
case $background in
'' | radial | plane | mean) ;;
*) die "--background must be radial, plane or mean, not '$background'" ;;
esac
[[ -z $allow_failed || $allow_failed =~ ^[0-9]+$ || $allow_failed =~ ^[0-9]+(\.[0-9]*)?%$ ]] ||
    die "--allow-failed needs a count (e.g. 5) or a percentage (e.g. 5%), not '$allow_failed'"
if ((strict)) && [[ -n $allow_failed ]]; then
    die "--strict and --allow-failed contradict each other; give one"
fi
if ((merge == 0 && ${#partialator_opts[@]} > 0)); then
    note "--no-merge: ignoring the partialator options after --"
fi
if [[ $prefix == *.stream ]]; then
    prefix=${prefix%.stream}
    note "-o takes a prefix; using '$prefix' (outputs $prefix.stream, $prefix.hkl)"
fi

tools=(streamfilter sbatch)
# partialator runs on the compute nodes; with --setup it may come from a module there.
((merge == 0 || ${#setup[@]} > 0)) || tools+=(partialator)
require_tools "${tools[@]}"
for f in "$input" ${geometry:+"$geometry"}; do
    if [[ ! -f $f ]]; then
        ((dry_run)) || die "file not found: $f"
        note "file not found (needed for a real run): $f"
    fi
done

input=$(abspath "$input")
prefix=$(abspath "$prefix")
workdir=$(abspath "${workdir:-$prefix-shards}")
data_root=$(dirname -- "$input")
[[ -z $geometry ]] || geometry=$(abspath "$geometry")
for k in "${!data_roots[@]}"; do
    data_roots[k]=$(abspath "${data_roots[k]}")
done
[[ $prefix.stream != "$input" ]] || die "output $prefix.stream would overwrite the input stream"
last=$((ntasks - 1))
((last <= 1000)) || note "array index $last exceeds Slurm's default MaxArraySize (1001)"

out_dir=$(dirname -- "$prefix")
[[ -d $out_dir ]] || run mkdir -p -- "$out_dir"
run mkdir -p -- "$workdir/logs"
run streamfilter split "$input" -n "$ntasks" -o "$workdir/shard"

# The job scripts (/bin/sh, via --wrap): setup commands, then the work, stopping at the first
# failure so that a failed task fails the array job and the dependent job never starts.
# (set -e only: module/profile scripts run by --setup often trip over set -u.)
preamble='set -e;'
for cmd in ${setup[@]+"${setup[@]}"}; do
    preamble+=" $cmd;"
done

reint_opts=(--data-root "$data_root")
for d in ${data_roots[@]+"${data_roots[@]}"}; do
    reint_opts+=(--data-root "$d")
done
reint_opts+=(-j "$cpus")
[[ -z $method ]] || reint_opts+=(--method "$method")
[[ -z $int_radius ]] || reint_opts+=(--int-radius "$int_radius")
[[ -z $background ]] || reint_opts+=(--background "$background")
[[ -z $geometry ]] || reint_opts+=(-g "$geometry")
[[ -z $allow_failed ]] || reint_opts+=(--allow-failed "$allow_failed")
((strict == 0)) || reint_opts+=(--strict)
task_script="$preamble i=\$(printf %03d \"\${SLURM_ARRAY_TASK_ID:?not an array task}\");"
task_script+=" streamfilter reintegrate $(sh_quote "$workdir/shard")-\"\$i\".stream"
task_script+=" -o $(sh_quote "$workdir/reint")-\"\$i\".stream $(sh_quote "${reint_opts[@]}")"

shards=()
for ((k = 0; k < ntasks; k++)); do
    printf -v shard '%s/reint-%03d.stream' "$workdir" "$k"
    shards+=("$shard")
done
merge_script="$preamble streamfilter cat $(sh_quote "${shards[@]}") -o $(sh_quote "$prefix.stream")"
if ((merge)); then
    pm=(partialator -i "$prefix.stream" -o "$prefix.hkl" -y "$symmetry" -j "$cpus")
    merge_script+="; $(sh_quote "${pm[@]}" ${partialator_opts[@]+"${partialator_opts[@]}"})"
fi

common=(--cpus-per-task="$cpus")
[[ -z $partition ]] || common+=(--partition="$partition")
[[ -z $time_limit ]] || common+=(--time="$time_limit")
[[ -z $mem ]] || common+=(--mem="$mem")
common+=(${sbatch_extra[@]+"${sbatch_extra[@]}"})

submit sbatch --parsable --job-name=sf-reint --array="0-$last${max_running:+%$max_running}" \
    "${common[@]}" --output="$workdir/logs/reint-%A_%a.log" --wrap="$task_script"
array_job=$job_id
submit sbatch --parsable --job-name=sf-merge --dependency=afterok:"$array_job" \
    "${common[@]}" --output="$workdir/logs/merge-%j.log" --wrap="$merge_script"
if ((!dry_run)); then
    outputs=$prefix.stream
    ((merge == 0)) || outputs+=" and $prefix.hkl"
    printf '%s: submitted array job %s (%d tasks) and merge job %s, writing %s\n' \
        "$PROG" "$array_job" "$ntasks" "$job_id" "$outputs" >&2
fi
