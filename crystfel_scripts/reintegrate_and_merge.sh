#!/usr/bin/env bash
# Re-integrate a CrystFEL stream with streamfilter, merge it with partialator and compute
# the usual figures of merit with check_hkl and compare_hkl.  Run with --help for usage.
set -euo pipefail

PROG=${0##*/}
# shellcheck disable=SC2034  # used by require_tools in common.sh
INSTALL_HINT='install CrystFEL (or e.g. "module load crystfel") and streamfilter first'
# shellcheck source=/dev/null  # common.sh is checked on its own
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<EOF
Usage: $PROG -i IN.stream -o PREFIX -y POINTGROUP -p CELL [options] [-- PARTIALATOR_OPTIONS...]

Re-integrate every reflection of IN.stream with 'streamfilter reintegrate', merge the new
stream with partialator, then compute per-shell statistics with check_hkl and the half-set
figures of merit (CC1/2, Rsplit) with compare_hkl.  Commands run in this order:

  streamfilter reintegrate IN.stream -o PREFIX.stream ...
  partialator -i PREFIX.stream -o PREFIX.hkl -y POINTGROUP ... [PARTIALATOR_OPTIONS]
  check_hkl   -y POINTGROUP -p CELL --nshells=N ... --shell-file=PREFIX_check.dat PREFIX.hkl
  compare_hkl ... --fom=CC     --shell-file=PREFIX_CChalf.dat PREFIX.hkl1 PREFIX.hkl2
  compare_hkl ... --fom=Rsplit --shell-file=PREFIX_Rsplit.dat PREFIX.hkl1 PREFIX.hkl2

Outputs: PREFIX.stream, PREFIX.hkl (+ .hkl1, .hkl2 half-sets), PREFIX_check.dat,
PREFIX_CChalf.dat, PREFIX_Rsplit.dat.  partialator writes its own diagnostics
(partialator.params, pgraph, pr-logs/) into the current directory (pass --no-logs after --
to skip pr-logs/).

Required:
  -i, --input FILE        input stream written by indexamajig (or ambigator)
  -o, --output PREFIX     output prefix (may include a directory, created if missing)
  -y, --symmetry PG       merging point group, CrystFEL symbol (4/mmm, 422, mmm, 2/m_uab ...)
  -p, --cell FILE         unit cell (CrystFEL .cell or PDB) for check_hkl and compare_hkl

Options:
      --method M          streamfilter integration method: profile (default), robust or crystfel
      --int-radius R1,R2,R3
                          ring radii in pixels (default: the stream's own)
      --background MODEL  background model of --method robust (radial, plane, mean)
      --data-root DIR     where to look for the frames (repeatable; the stream's own
                          directory is searched first)
  -g, --geometry FILE     geometry for reintegrate (default: the one in the stream)
  -j, --jobs N            processes of reintegrate and threads of partialator
      --highres D         high-resolution limit of the shells, in Angstrom
      --lowres D          low-resolution limit of the shells, in Angstrom
      --nshells N         number of resolution shells (default 10)
      --dry-run           print every command (one per line, shell-quoted), run nothing
  -h, --help              show this help and exit
  --                      everything after it is passed to partialator unchanged

Example:
  $PROG -i run.stream -o reint/run -y 4/mmm -p lyso.cell --method robust -j 8 \\
      --highres 2.0 -- --model=unity --iterations=1 --polarisation=none
EOF
}

input='' prefix='' symmetry='' cell='' method='' int_radius='' background='' geometry=''
jobs='' highres='' lowres='' nshells=10 dry_run=0
data_roots=() partialator_opts=()

while (($# > 0)); do
    case $1 in
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;  # --opt=value -> --opt value
    esac
    case $1 in
    -h | --help) usage; exit 0 ;;
    --dry-run) dry_run=1 ;;
    -i | --input) need_value "$@"; input=$2; shift ;;
    -o | --output) need_value "$@"; prefix=$2; shift ;;
    -y | --symmetry) need_value "$@"; symmetry=$2; shift ;;
    -p | --cell) need_value "$@"; cell=$2; shift ;;
    --method) need_value "$@"; method=$2; shift ;;
    --int-radius) need_value "$@"; int_radius=$2; shift ;;
    --background) need_value "$@"; background=$2; shift ;;
    --data-root) need_value "$@"; data_roots+=("$2"); shift ;;
    -g | --geometry) need_value "$@"; geometry=$2; shift ;;
    -j | --jobs) need_value "$@"; jobs=$2; shift ;;
    --highres) need_value "$@"; highres=$2; shift ;;
    --lowres) need_value "$@"; lowres=$2; shift ;;
    --nshells) need_value "$@"; nshells=$2; shift ;;
    --) shift; partialator_opts=("$@"); break ;;
    -*) die "unknown option '$1' (partialator options go after --; see --help)" ;;
    *) die "unexpected argument '$1' (the input stream is given with -i; see --help)" ;;
    esac
    shift
done

[[ -n $input ]] || die "missing required -i IN.stream (see --help)"
[[ -n $prefix ]] || die "missing required -o PREFIX (see --help)"
[[ -n $symmetry ]] || die "missing required -y POINTGROUP (see --help)"
[[ -n $cell ]] || die "missing required -p CELL (see --help)"
case $method in
'' | crystfel | robust | profile) ;;
*) die "--method must be profile, robust or crystfel, not '$method'" ;;
esac
[[ -z $jobs ]] || is_count "$jobs" || die "-j needs a positive integer, not '$jobs'"
is_count "$nshells" || die "--nshells needs a positive integer, not '$nshells'"
[[ -z $highres ]] || is_number "$highres" || die "--highres needs a number (Angstrom)"
[[ -z $lowres ]] || is_number "$lowres" || die "--lowres needs a number (Angstrom)"

if [[ $prefix == *.stream ]]; then
    prefix=${prefix%.stream}
    note "-o takes a prefix; using '$prefix' (outputs $prefix.stream, $prefix.hkl, ...)"
fi
out_stream=$prefix.stream
out_hkl=$prefix.hkl
[[ $out_stream != "$input" ]] || die "output $out_stream would overwrite the input stream"

require_tools streamfilter partialator check_hkl compare_hkl
for f in "$input" "$cell" ${geometry:+"$geometry"}; do
    if [[ ! -f $f ]]; then
        ((dry_run)) || die "file not found: $f"
        note "file not found (needed for a real run): $f"
    fi
done

out_dir=$(dirname -- "$prefix")
[[ -d $out_dir ]] || run mkdir -p -- "$out_dir"

reint=(streamfilter reintegrate "$input" -o "$out_stream")
[[ -z $method ]] || reint+=(--method "$method")
[[ -z $int_radius ]] || reint+=(--int-radius "$int_radius")
[[ -z $background ]] || reint+=(--background "$background")
for d in ${data_roots[@]+"${data_roots[@]}"}; do
    reint+=(--data-root "$d")
done
[[ -z $geometry ]] || reint+=(-g "$geometry")
[[ -z $jobs ]] || reint+=(-j "$jobs")
run "${reint[@]}"

merge=(partialator -i "$out_stream" -o "$out_hkl" -y "$symmetry")
[[ -z $jobs ]] || merge+=(-j "$jobs")
run "${merge[@]}" ${partialator_opts[@]+"${partialator_opts[@]}"}

# Shared by check_hkl and compare_hkl so that their shells coincide.
shells=(-y "$symmetry" -p "$cell" "--nshells=$nshells")
[[ -z $lowres ]] || shells+=("--lowres=$lowres")
[[ -z $highres ]] || shells+=("--highres=$highres")

# Options first, files last, as in CrystFEL's own examples (no reliance on getopt permuting).
run check_hkl "${shells[@]}" "--shell-file=${prefix}_check.dat" "$out_hkl"
run compare_hkl "${shells[@]}" --fom=CC "--shell-file=${prefix}_CChalf.dat" \
    "$out_hkl"1 "$out_hkl"2
run compare_hkl "${shells[@]}" --fom=Rsplit "--shell-file=${prefix}_Rsplit.dat" \
    "$out_hkl"1 "$out_hkl"2

if ((!dry_run)); then
    printf '%s: done: %s %s(+1,2) %s_check.dat %s_CChalf.dat %s_Rsplit.dat\n' \
        "$PROG" "$out_stream" "$out_hkl" "$prefix" "$prefix" "$prefix" >&2
fi
