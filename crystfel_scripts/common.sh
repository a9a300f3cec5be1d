# Helpers shared by the crystfel_scripts (sourced, not run). The sourcing script sets PROG
# (its name for messages), dry_run (0/1) and INSTALL_HINT (what to do about missing tools).
# shellcheck shell=bash disable=SC2154

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 2
}

note() {
    printf '%s: note: %s\n' "$PROG" "$*" >&2
}

# One shell-quoted command line, without the trailing space of printf '%q '.
quote_cmd() {
    local line
    line=$(printf '%q ' "$@")
    printf '%s\n' "${line% }"
}

# Run a command, or only print it under --dry-run.
run() {
    if ((dry_run)); then
        quote_cmd "$@"
    else
        printf '+ %s\n' "$(quote_cmd "$@")" >&2
        "$@"
    fi
}

# The tools among "$@" that are not in PATH, space-separated.
missing_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || printf '%s ' "$tool"
    done
}

# Fail (exit 127) naming every missing tool; under --dry-run only report them.
require_tools() {
    local missing
    missing=$(missing_tools "$@")
    [[ -z $missing ]] && return 0
    if ((dry_run)); then
        note "not found in PATH (needed for a real run): ${missing% }"
        return 0
    fi
    printf '%s: error: required tool(s) not found in PATH: %s\n' "$PROG" "${missing% }" >&2
    printf '%s: %s\n' "$PROG" "$INSTALL_HINT" >&2
    exit 127
}

need_value() {
    (($# >= 2)) || die "option $1 needs a value (see --help)"
}

is_count() {
    [[ $1 =~ ^[1-9][0-9]*$ ]]
}

is_number() {
    [[ $1 =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]]
}
