#!/bin/sh
# The sources whose objects the fuzz harnesses link: what the linker would
# take from the archives, read from the symbol tables of objects built already
# (the normal tree's), so the fuzz tree compiles only those (make fuzz).
#
#   scripts/fuzz-objs.sh PREFIX ROOT.o... -- OBJ...
#
# ROOTs are the objects every harness link takes whole (the harnesses, the
# test points); OBJs are the archive members, in the order the harness link
# names the archives (the first definition of a symbol wins, as in the link).
# Starting from the roots' undefined symbols, every OBJ that defines one is
# taken, and its own undefined symbols in turn. Prints each taken OBJ as its
# source: PREFIX stripped, .o -> .c (PREFIX build/obj/: build/obj/common/json.o
# -> common/json.c). A module a harness starts to call is found here with no
# edit; one found wrongly would fail the harness's link, never pass it.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 PREFIX ROOT.o... -- OBJ..." >&2; exit 2; }
prefix=$1; shift
roots=
while [ $# -gt 0 ] && [ "$1" != -- ]; do roots="$roots $1"; shift; done
[ $# -gt 0 ] || { echo "$0: no -- before the archive members" >&2; exit 2; }
shift
[ -n "$roots" ] && [ $# -gt 0 ] || { echo "$0: no roots or no members" >&2; exit 2; }

# nm -A -P -g: "FILE: SYMBOL TYPE [VALUE SIZE]", external symbols only.
{ nm -A -P -g $roots | sed 's/^/R /'; nm -A -P -g "$@" | sed 's/^/M /'; } | awk -v prefix="$prefix" '
	{ file = $2; sub(/:$/, "", file); sym = $3; type = $4 }
	$1 == "R" { root[file] = 1 }
	$1 == "M" && !(file in order) { order[file] = ++nfiles; name[nfiles] = file }
	type == "U" { undef[file] = undef[file] " " sym; next }
	# Weak undefined (w, v) pulls no member; anything else is a definition.
	type == "w" || type == "v" { next }
	$1 == "M" && !(sym in def) { def[sym] = file }
	END {
		n = 0
		for (f in root) queue[++n] = f
		for (i = 1; i <= n; i++) {
			k = split(undef[queue[i]], syms, " ")
			for (j = 1; j <= k; j++) {
				f = def[syms[j]]
				if (f != "" && !(f in taken)) { taken[f] = 1; queue[++n] = f }
			}
		}
		for (i = 1; i <= nfiles; i++) {
			if (!(name[i] in taken)) continue
			src = name[i]
			if (index(src, prefix) == 1) src = substr(src, length(prefix) + 1)
			sub(/\.o$/, ".c", src)
			print src
		}
	}'
