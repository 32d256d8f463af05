#!/bin/sh
# docs_check.sh - keeps the user docs and the man pages from drifting away
# from what the programs actually accept.
#
#   docs_check.sh options MAN MD BINARY [SUBCOMMAND]
#       Runs BINARY [SUBCOMMAND] --help. Every long option (--foo) and every
#       short option on an option line (-o, ...) it prints must appear in the
#       man page MAN and in the markdown page MD; every long option MAN or MD
#       names must be one --help prints. The EXAMPLES part of each text is
#       left out on both sides: examples may show other commands' flags.
#   docs_check.sh api MAN HEADER [MD]
#       Every exported function of HEADER (TRACEBPF_API) is named in MAN;
#       every tracebpf_*() function MAN or MD names is exported by HEADER, and
#       every TRACE_* / TRACEBPF_* macro or variable they name is in HEADER.
#   docs_check.sh render MAN...
#       Each page renders with the man macros without a warning (needs groff;
#       says so and checks nothing else when groff is missing).
#
# Exit status 0 when everything matches, 1 with one line per mismatch.
set -u

fail=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

err() {
    echo "docs_check: $*" >&2
    fail=1
}

need_file() {
    if [ ! -r "$1" ]; then
        err "$1: missing (expected for $2)"
        return 1
    fi
}

# troff source to plain words: \- is a hyphen, font escapes go away.
man_text() {
    sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\f(..//g' -e 's/\\&//g' "$1"
}

# Drop an EXAMPLES section (man: .SH EXAMPLES; markdown: ## Examples) up to
# the next section header.
drop_examples() {
    awk '
        /^\.SH[ \t]/ { skip = ($2 ~ /^"?EXAMPLES?"?$/) }
        /^##[ \t]/   { skip = (tolower($2) ~ /^examples?$/) }
        !skip
    '
}

# The parts of a markdown page that list options: synopsis lines (an
# indented line starting with a program name), table rows, and sections
# named Options, Synopsis or Limits. Prose may quote other programs' flags
# (cmake --install, groupadd --system), so it is not read this way.
md_listed() {
    awk '
        /^##/ { sect = tolower($0) ~ /options|synopsis|limits/ }
        sect || /^\|/ || /^    (sudo )?(tracebpf|traced-bpf)/
    '
}

long_opts() {
    grep -oE -- '--[a-z][a-z0-9-]*[a-z0-9]' | sort -u
}

# Short options only from lines that start with an option (help layout).
short_opts() {
    grep -E '^[[:space:]]+-[a-zA-Z]([ ,]|$)' |
        grep -oE -- '(^|[ ,])-[a-zA-Z]([ ,]|$)' | tr -d ' ,' | sort -u
}

# mentions WORD FILE: WORD occurs as an option token, not inside a longer one.
mentions() {
    grep -qE -- "(^|[^a-zA-Z0-9-])$1([^a-zA-Z0-9-]|\$)" "$2"
}

check_options() {
    man=$1 md=$2 bin=$3 sub=${4:-}
    what="${bin##*/}${sub:+ $sub}"
    need_file "$man" "$what" || return
    need_file "$md" "$what" || return
    if [ ! -x "$bin" ]; then
        err "$bin: not built; cannot check the docs of '$what'"
        return
    fi
    # shellcheck disable=SC2086 # $sub is one word or nothing
    if ! "$bin" $sub --help >"$tmp/help.raw" 2>"$tmp/help.err"; then
        err "'$what --help' failed: $(head -n 3 "$tmp/help.err")"
        return
    fi
    awk '/^EXAMPLES/ { exit } { print }' "$tmp/help.raw" >"$tmp/help"
    long_opts <"$tmp/help" >"$tmp/help.long"
    short_opts <"$tmp/help" >"$tmp/help.short"
    if ! grep -qiE '^usage:' "$tmp/help"; then
        err "'$what --help' prints no usage line"
        return
    fi

    man_text "$man" | drop_examples >"$tmp/man"
    drop_examples <"$md" >"$tmp/md"
    md_listed <"$tmp/md" >"$tmp/md.listed"

    # shellcheck disable=SC2013 # one option a line, no spaces
    for o in $(cat "$tmp/help.long" "$tmp/help.short"); do
        mentions "$o" "$tmp/man" || err "$man: does not describe $o (printed by '$what --help')"
        mentions "$o" "$tmp/md" || err "$md: does not describe $o (printed by '$what --help')"
    done
    for doc in man md.listed; do
        src=$man
        [ "$doc" = md.listed ] && src=$md
        for o in $(long_opts <"$tmp/$doc"); do
            # --help itself just ran, even when the text does not list it.
            [ "$o" = --help ] && continue
            grep -qx -- "$o" "$tmp/help.long" ||
                err "$src: names $o, which '$what --help' does not print"
        done
    done
    echo "docs_check: $what: $(wc -l <"$tmp/help.long") long and" \
        "$(wc -l <"$tmp/help.short") short options checked against $man and $md"
}

check_api() {
    man=$1 hdr=$2 md=${3:-}
    need_file "$man" "the library API" || return
    need_file "$hdr" "the library API" || return
    # Declarations start a line with TRACEBPF_API and may wrap up to the ';'.
    awk '/^TRACEBPF_API/ { d = 1; s = "" } d { s = s " " $0 } d && /;/ { print s; d = 0 }' "$hdr" |
        sed -E 's/^[^(]*[^a-z0-9_(]([a-z_][a-z0-9_]*)[[:space:]]*\(.*/\1/' | sort -u >"$tmp/api"
    if [ ! -s "$tmp/api" ]; then
        err "$hdr: no TRACEBPF_API function found"
        return
    fi
    man_text "$man" | grep -v '^\.\\"' >"$tmp/man"
    # shellcheck disable=SC2013 # one name a line, no spaces
    for f in $(cat "$tmp/api"); do
        grep -qE "(^|[^a-z0-9_])$f([^a-z0-9_]|\$)" "$tmp/man" ||
            err "$man: does not describe $f() (exported by $hdr)"
    done
    docs="$tmp/man"
    if [ -n "$md" ]; then
        need_file "$md" "the library API" && docs="$docs $md"
    fi
    for d in $docs; do
        src=$d
        [ "$d" = "$tmp/man" ] && src=$man
        for f in $(grep -oE 'tracebpf_[a-z0-9_]+[[:space:]]*\(' "$d" | tr -d ' (' | sort -u); do
            grep -qx -- "$f" "$tmp/api" || err "$src: names $f(), which $hdr does not export"
        done
        # Macros and environment variables are spelled out in the header.
        # shellcheck disable=SC2013 # one name a line, no spaces
        for m in $(grep -oE '\<TRACE(BPF)?_[A-Z0-9_]*[A-Z0-9]\>' "$d" | sort -u); do
            grep -q -- "$m" "$hdr" || err "$src: names $m, which $hdr does not mention"
        done
    done
    echo "docs_check: $(wc -l <"$tmp/api") functions of $hdr checked against $man${md:+ and $md}"
}

check_render() {
    if ! command -v groff >/dev/null 2>&1; then
        echo "docs_check: groff not installed: render check of $* not done"
        return
    fi
    for man in "$@"; do
        need_file "$man" "rendering" || continue
        if ! groff -man -Tutf8 -ww -z "$man" >"$tmp/render" 2>&1 || [ -s "$tmp/render" ]; then
            err "$man: does not render cleanly: $(head -n 3 "$tmp/render")"
            continue
        fi
        for s in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
            grep -qE "^\.SH \"?$s\"?\$" "$man" || err "$man: no $s section"
        done
    done
    echo "docs_check: rendered $# page(s)"
}

mode=${1:-}
[ $# -gt 0 ] && shift
case $mode in
options)
    if [ $# -ge 3 ]; then check_options "$@"; else err "usage: options MAN MD BINARY [SUB]"; fi
    ;;
api)
    if [ $# -ge 2 ]; then check_api "$@"; else err "usage: api MAN HEADER [MD]"; fi
    ;;
render)
    if [ $# -ge 1 ]; then check_render "$@"; else err "usage: render MAN..."; fi
    ;;
*) err "usage: docs_check.sh options|api|render ..." ;;
esac
exit $fail
