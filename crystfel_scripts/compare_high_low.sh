#!/usr/bin/env bash
# Compare two streams of the same frames (e.g. two integration settings) with
# 'streamfilter compare', and optionally merge each with partialator and compare the merged
# lists with compare_hkl.  Run with --help for usage.
set -euo pipefail

PROG=${0##*/}
# shellcheck disable=SC2034  # used by require_tools in common.sh
INSTALL_HINT='install them (CrystFEL: e.g. "module load crystfel"), or use --crystfel no'
# shellcheck source=/dev/null  # common.sh is checked on its own
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<EOF
Usage: $PROG -y POINTGROUP [options] A.stream B.stream [-- PARTIALATOR_OPTIONS...]

Compare two streams of the same frames, e.g. a high- and a low-radius integration, or
indexamajig's stream and its streamfilter re-integration: per observation (matched
reflections, I, sigma(I) and I/sigma per resolution shell) and merged (completeness,
multiplicity, <I/sigma>, CC1/2, CC and R1(I) between A and B, and against --reference).
Writes into OUTDIR:

  compare.txt    the text report of 'streamfilter compare' (also shown on the terminal)
  compare.json   every number of the report
  plots/         PNG figures

With CrystFEL (--crystfel yes, or auto when partialator and compare_hkl are in PATH and
-p is given) each stream is also merged with partialator (a.hkl, b.hkl + half-sets) and
compared with compare_hkl: a_vs_b_CC.dat, a_vs_b_R1I.dat, a_CChalf.dat, b_CChalf.dat, and
with --reference a_vs_reference_CC.dat, b_vs_reference_CC.dat.  partialator writes its own
diagnostics (partialator.params, pr-logs/) into the current directory.

Required:
  -y, --symmetry PG       merging point group, CrystFEL symbol (4/mmm, 422, mmm ...)
  A.stream B.stream       the two streams

Options:
  -o, --out-dir DIR       where the report goes (default: compare_report)
  -p, --cell FILE         unit cell (CrystFEL .cell or PDB); needed by compare_hkl
      --reference FILE    reference reflection list (e.g. the truth), CrystFEL .hkl
      --nshells N         number of resolution shells (default 10)
      --highres D         high-resolution limit of the shells, in Angstrom
      --lowres D          low-resolution limit of the shells, in Angstrom
      --crystfel MODE     auto (default), yes or no: also merge with partialator and
                          compare with compare_hkl
  -j, --jobs N            threads of partialator
      --dry-run           print every command (one per line, shell-quoted), run nothing
  -h, --help              show this help and exit
  --                      everything after it is passed to partialator unchanged

Example:
  $PROG -y 4/mmm -p lyso.cell --reference truth.hkl -o r345_vs_r234 \\
      run_r345.stream run_r234.stream -- --model=unity --iterations=1
EOF
}

# run_tee FILE CMD...: run CMD, showing its standard output and saving it to FILE.
run_tee() {
    local file=$1
    shift
    if ((dry_run)); then
        printf '%s | tee %q\n' "$(quote_cmd "$@")" "$file"
    else
        printf '+ %s | tee %q\n' "$(quote_cmd "$@")" "$file" >&2
        "$@" | tee "$file"
    fi
}

symmetry='' out_dir=compare_report cell='' reference='' nshells=10 highres='' lowres=''
crystfel=auto jobs='' dry_run=0
streams=() partialator_opts=()

while (($# > 0)); do
    case $1 in
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;  # --opt=value -> --opt value
    esac
    case $1 in
    -h | --help) usage; exit 0 ;;
    --dry-run) dry_run=1 ;;
    -y | --symmetry) need_value "$@"; symmetry=$2; shift ;;
    -o | --out-dir) need_value "$@"; out_dir=$2; shift ;;
    -p | --cell) need_value "$@"; cell=$2; shift ;;
    --reference) need_value "$@"; reference=$2; shift ;;
    --nshells) need_value "$@"; nshells=$2; shift ;;
    --highres) need_value "$@"; highres=$2; shift ;;
    --lowres) need_value "$@"; lowres=$2; shift ;;
    --crystfel) need_value "$@"; crystfel=$2; shift ;;
    -j | --jobs) need_value "$@"; jobs=$2; shift ;;
    --) shift; partialator_opts=("$@"); break ;;
    -?*) die "unknown option '$1' (partialator options go after --; see --help)" ;;
    *) streams+=("$1") ;;
    esac
    shift
done

((${#streams[@]} == 2)) || die "need exactly two streams A and B, got ${#streams[@]} (see --help)"
[[ -n $symmetry ]] || die "missing required -y POINTGROUP (see --help)"
case $crystfel in
auto | yes | no) ;;
*) die "--crystfel must be auto, yes or no, not '$crystfel'" ;;
esac
is_count "$nshells" || die "--nshells needs a positive integer, not '$nshells'"
[[ -z $jobs ]] || is_count "$jobs" || die "-j needs a positive integer, not '$jobs'"
[[ -z $highres ]] || is_number "$highres" || die "--highres needs a number (Angstrom)"
[[ -z $lowres ]] || is_number "$lowres" || die "--lowres needs a number (Angstrom)"
stream_a=${streams[0]}
stream_b=${streams[1]}

if [[ $crystfel == auto ]]; then
    crystfel=no
    if [[ -n $(missing_tools partialator compare_hkl) ]]; then
        note "partialator/compare_hkl not in PATH: skipping the CrystFEL merge"
    elif [[ -z $cell ]]; then
        note "no -p CELL: skipping the CrystFEL merge (compare_hkl needs a cell)"
    else
        crystfel=yes
    fi
elif [[ $crystfel == yes && -z $cell ]]; then
    die "--crystfel yes needs -p CELL (compare_hkl needs a unit cell)"
fi

if [[ $crystfel == yes ]]; then
    require_tools streamfilter partialator compare_hkl
else
    require_tools streamfilter
    ((${#partialator_opts[@]} == 0)) || note "no CrystFEL merge: ignoring the options after --"
fi
for f in "$stream_a" "$stream_b" ${cell:+"$cell"} ${reference:+"$reference"}; do
    if [[ ! -f $f ]]; then
        ((dry_run)) || die "file not found: $f"
        note "file not found (needed for a real run): $f"
    fi
done

[[ -d $out_dir ]] || run mkdir -p -- "$out_dir"

cmp=(streamfilter compare "$stream_a" "$stream_b" -y "$symmetry" --shells "$nshells")
[[ -z $cell ]] || cmp+=(-p "$cell")
[[ -z $reference ]] || cmp+=(--reference "$reference")
[[ -z $lowres ]] || cmp+=(--lowres "$lowres")
[[ -z $highres ]] || cmp+=(--highres "$highres")
cmp+=(--json "$out_dir/compare.json" --plots "$out_dir/plots")
run_tee "$out_dir/compare.txt" "${cmp[@]}"

if [[ $crystfel == yes ]]; then
    for ab in a b; do
        if [[ $ab == a ]]; then src=$stream_a; else src=$stream_b; fi
        merge=(partialator -i "$src" -o "$out_dir/$ab.hkl" -y "$symmetry")
        [[ -z $jobs ]] || merge+=(-j "$jobs")
        run "${merge[@]}" ${partialator_opts[@]+"${partialator_opts[@]}"}
    done

    # Options first, files last, as in CrystFEL's own examples.
    shells=(-y "$symmetry" -p "$cell" "--nshells=$nshells")
    [[ -z $lowres ]] || shells+=("--lowres=$lowres")
    [[ -z $highres ]] || shells+=("--highres=$highres")
    d=$out_dir
    run compare_hkl "${shells[@]}" --fom=CC "--shell-file=$d/a_vs_b_CC.dat" "$d/a.hkl" "$d/b.hkl"
    run compare_hkl "${shells[@]}" --fom=R1I "--shell-file=$d/a_vs_b_R1I.dat" \
        "$d/a.hkl" "$d/b.hkl"
    for ab in a b; do
        run compare_hkl "${shells[@]}" --fom=CC "--shell-file=$d/${ab}_CChalf.dat" \
            "$d/$ab.hkl1" "$d/$ab.hkl2"
    done
    if [[ -n $reference ]]; then
        for ab in a b; do
            run compare_hkl "${shells[@]}" --fom=CC "--shell-file=$d/${ab}_vs_reference_CC.dat" \
                "$d/$ab.hkl" "$reference"
        done
    fi
fi

if ((!dry_run)); then
    printf '%s: done: report in %s/ (compare.txt, compare.json, plots/)\n' "$PROG" "$out_dir" >&2
fi
