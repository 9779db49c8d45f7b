#!/usr/bin/env bash
# Fails on an #include that goes against the layering (README "Design"):
# each folder may include only the folders listed for it.
set -u
cd "$(dirname "$0")/.."
declare -A allow=(
	[util]="util"
	[pipefile]="pipefile util"
	[store]="store util"
	[executors]="executors util"
	[remote]="remote store executors util"
	[engine]="engine pipefile executors remote store util"
	[cli]="cli engine pipefile executors remote store util"
)
# Third-party libraries have one door each.
declare -A door=(
	[yaml.h]="pipefile/yaml.c"
	[git2.h]="store/git.c"
	[xxhash.h]="util/hash.c"
	[curl/curl.h]="executors/http.c"
	[pcre2.h]="util/regex.c"
	[jansson.h]="executors/json.c"
	[zlib.h]="store/pack.c"
)
bad=0
for dir in "${!allow[@]}"; do
	for f in "$dir"/*.[ch]; do
		[ -e "$f" ] || continue
		while IFS= read -r line; do
			inc=${line#*\"}
			inc=${inc%%\"*}
			top=${inc%%/*}
			[ "$top" = "$inc" ] && continue
			case " ${allow[$dir]} " in
			*" $top "*) ;;
			*) echo "$f: includes \"$inc\": $dir/ may include only: ${allow[$dir]}"; bad=1 ;;
			esac
		done < <(grep -E '^#include "' "$f")
		while IFS= read -r line; do
			inc=${line#*<}
			inc=${inc%%>*}
			[ -n "${door[$inc]:-}" ] || continue
			case " ${door[$inc]} " in
			*" $f "*) ;;
			*) echo "$f: includes <$inc>, which only ${door[$inc]} may"; bad=1 ;;
			esac
		done < <(grep -E '^#include <' "$f")
	done
done
# The project's git is read through libgit2 (store/git.c), never by
# running git.
if grep -nE '\bpopen\(' util/*.c pipefile/*.c store/*.c executors/*.c remote/*.c engine/*.c cli/*.c; then
	echo "popen(): a library's door is its one file, not a subprocess"
	bad=1
fi
[ "$bad" = 0 ] && echo "layers ok"
exit "$bad"
