#!/bin/sh
# docs_install.sh - checks what `cmake --install` lays down, the way a user
# or a packager meets it: programs that run from the prefix, the library with
# its headers and pkg-config file, man pages that man(1) finds and whose
# cross references resolve, and the systemd unit.
#
#   [CMAKE=cmake] docs_install.sh BUILD_DIR SOURCE_DIR CC CFLAGS PROGRAMS...
#       PROGRAMS: the executables this build has (traced-bpf, tracebpf,
#       traced-bpf-probes); the library is checked when BUILD_DIR has it.
#       CFLAGS: what an app must add to link this build's library (the
#       sanitizer flags of a sanitizer build), may be empty.
#
# The app of the EXAMPLES section of libtracebpf(3) is compiled against the
# installed library through pkg-config, run in standalone mode, and its trace
# read back with the installed tracebpf: 100 frames of one slice (begin and
# end) and one counter make 300 track events.
#
# Exit status 0 when everything is in place, 1 with one line per problem.
set -u

if [ $# -lt 5 ]; then
    echo "usage: docs_install.sh BUILD_DIR SOURCE_DIR CC CFLAGS PROGRAMS..." >&2
    exit 1
fi
build=$1 src=$2 cc=$3 cflags=$4
shift 4

fail=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

err() {
    echo "docs_install: $*" >&2
    fail=1
}

if ! "${CMAKE:-cmake}" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
    err "cmake --install $build failed:"
    tail -n 5 "$tmp/install.log" >&2
    exit 1
fi
echo "docs_install: installed $(find "$prefix" -type f | wc -l) files into a scratch prefix"

# Programs: present, and they run from the prefix (no build-tree rpath needed).
for prog in "$@"; do
    if [ ! -x "$prefix/bin/$prog" ]; then
        err "bin/$prog: not installed"
        continue
    fi
    "$prefix/bin/$prog" --version >"$tmp/ver" 2>&1 || err "bin/$prog --version failed: $(cat "$tmp/ver")"
done

# Man pages: every page of docs/man in man<section>, found by man(1).
mandir=$prefix/share/man
for page in "$src"/docs/man/*.[1-8]; do
    name=${page##*/}
    sec=${name##*.}
    if ! cmp -s "$page" "$mandir/man$sec/$name"; then
        err "share/man/man$sec/$name: not installed (or not the docs/man copy)"
        continue
    fi
    if command -v man >/dev/null 2>&1; then
        MANPATH=$mandir man -w "$sec" "${name%.*}" >/dev/null 2>&1 ||
            err "man $sec ${name%.*}: not found under $mandir"
    fi
done
# Cross references to our own pages must land on an installed page.
# shellcheck disable=SC2013 # one page name a line, no spaces
for ref in $(sed -n 's/^\.BR \(\(traced\|tracebpf\|libtracebpf\)[a-z\\-]*\) (\([1-8]\)).*/\1.\3/p' \
    "$mandir"/man*/* | sed 's/\\-/-/g' | sort -u); do
    [ -f "$mandir/man${ref##*.}/$ref" ] || err "a man page refers to ${ref%.*}(${ref##*.}), which is not installed"
done

# The systemd unit, pointing at the daemon and its man page.
unit=$prefix/lib/systemd/system/traced-bpf.service
if [ ! -f "$unit" ]; then
    err "lib/systemd/system/traced-bpf.service: not installed"
else
    grep -qE '^ExecStart=/.*/traced-bpf( |$)' "$unit" || err "$unit: no ExecStart of traced-bpf"
    doc=$(sed -n 's/^Documentation=man:\([a-z-]*\)(\([1-8]\))$/\2 \1/p' "$unit")
    if [ -z "$doc" ] || [ ! -f "$mandir/man${doc%% *}/${doc#* }.${doc%% *}" ]; then
        err "$unit: Documentation= does not name an installed man page"
    fi
fi

# The library, when this build has it.
if [ ! -e "$build/producers/userspace/tracebpf.pc" ]; then
    echo "docs_install: no libtracebpf in this build: library checks not done"
    exit $fail
fi
pc=$(find "$prefix" -name tracebpf.pc | head -n 1)
if [ -z "$pc" ]; then
    err "tracebpf.pc: not installed"
    exit 1
fi
libdir=${pc%/pkgconfig/tracebpf.pc}
for f in include/tracebpf/tracebpf.h include/tracebpf/shm_abi.h; do
    [ -f "$prefix/$f" ] || err "$f: not installed"
done
ls "$libdir"/libtracebpf.so.* >/dev/null 2>&1 || err "${libdir#"$prefix"/}/libtracebpf.so.N: not installed"
[ -f "$libdir/libtracebpf.a" ] || err "${libdir#"$prefix"/}/libtracebpf.a: not installed"

awk '/^\.SH EXAMPLES/ { e = 1 } e && /^\.nf/ { p = 1; next } p && /^\.fi/ { exit } p' \
    "$src/docs/man/libtracebpf.3" | sed -e 's/\\-/-/g' -e 's/\\e/\\/g' >"$tmp/app.c"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
if ! flags=$(pkg-config --cflags --libs tracebpf 2>"$tmp/pc.err"); then
    err "pkg-config tracebpf: $(cat "$tmp/pc.err")"
    exit 1
fi
# shellcheck disable=SC2086 # flag lists are meant to split
if ! $cc $cflags -Wall -Werror "$tmp/app.c" $flags -Wl,-rpath,"$libdir" -o "$tmp/app" \
    >"$tmp/cc.log" 2>&1; then
    err "the libtracebpf(3) example does not build against the installed library:"
    head -n 10 "$tmp/cc.log" >&2
    exit 1
fi
# The environment must not point the app at any other library copy.
if ! (cd "$tmp" && env -u LD_LIBRARY_PATH TRACEBPF_OUTPUT="$tmp/app.pftrace" ./app) \
    >"$tmp/app.log" 2>&1; then
    err "the libtracebpf(3) example failed: $(head -n 5 "$tmp/app.log")"
    exit 1
fi
ldd "$tmp/app" 2>/dev/null | grep -q "$libdir/libtracebpf.so" ||
    err "the example app did not load the installed libtracebpf.so"
if [ -x "$prefix/bin/tracebpf" ]; then
    if ! "$prefix/bin/tracebpf" info "$tmp/app.pftrace" >"$tmp/info" 2>&1; then
        err "tracebpf info on the example's trace failed: $(head -n 5 "$tmp/info")"
    else
        n=$(awk '$1 == "track_event" { print $2 }' "$tmp/info")
        [ "$n" = 300 ] || err "the example's trace holds '${n:-no}' track events, expected 300"
    fi
fi
echo "docs_install: libtracebpf(3) example built with pkg-config and recorded ${n:-?} track events"
exit $fail
