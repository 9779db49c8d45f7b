# bash completion for pipe(1). Commands and options come from the program's
# own help (`pipe --help`, `pipe help COMMAND`), stage names from `pipe dag`
# on the Pipefile in use, job ids from `pipe jobs`: nothing here needs
# editing when pipe grows a command, an option or a stage.

# The commands, one a line.
_pipe_commands()
{
	"$1" --help 2>/dev/null |
		awk '/^commands:/ { f = 1; next } /^$/ { f = 0 } f { print $1 }'
}

# The options in a help text: words starting with - or -- after a blank,
# '[', '|' or ','.
_pipe_options()
{
	grep -oE -- '(^|[][ ,|])--?[A-Za-z][-A-Za-z]*' | sed 's/^[][ ,|]*//' |
		sort -u
}

_pipe()
{
	local line=${COMP_LINE:0:COMP_POINT} prog=${COMP_WORDS[0]}
	local cur=${line##*[[:space:]]} prev cmd="" pf=() words i
	local cands="" files=0

	read -ra words <<<"${line% "$cur"}"
	[ "$cur" = "$line" ] && words=()
	prev=${words[${#words[@]} - 1]:-}
	# global options come before the command
	for ((i = 1; i < ${#words[@]}; i++)); do
		case ${words[i]} in
		--pipefile) pf=(--pipefile "${words[i + 1]:-}"); ((i++)) ;;
		--pipefile=*) pf=("${words[i]}") ;;
		-*) ;;
		*) cmd=${words[i]}; break ;;
		esac
	done

	if [ "$prev" = --pipefile ] || [ "$prev" = -o ]; then
		files=1
	elif [ -z "$cmd" ]; then
		if [[ $cur == -* ]]; then
			cands=$("$prog" --help 2>/dev/null |
				sed -n '/^options:/,$p' | _pipe_options)
		else
			cands=$(_pipe_commands "$prog")
		fi
	elif [[ $cur == -* ]]; then
		cands=$("$prog" help "$cmd" 2>/dev/null | _pipe_options)
	elif [ "$prev" = --executor ]; then
		cands="local docker kubernetes"
	elif [ "$prev" = -j ] || [ "$prev" = --datum ]; then
		return 0
	else
		case $cmd in
		help) cands=$(_pipe_commands "$prog") ;;
		run | log | inspect | checkout)
			cands=$("$prog" "${pf[@]}" dag 2>/dev/null |
				awk '{ print $1 }') ;;
		get)
			# REF, then a PATH in the workspace
			if [ "${#words[@]}" -gt $((i + 1)) ]; then
				files=1
			else
				cands=$("$prog" "${pf[@]}" dag 2>/dev/null |
					awk '{ print $1 }')
			fi ;;
		logs)
			cands=$("$prog" "${pf[@]}" jobs 2>/dev/null |
				awk 'NR > 1 { print $1 }') ;;
		esac
	fi
	if [ "$files" = 1 ]; then
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	else
		mapfile -t COMPREPLY < <(compgen -W "$cands" -- "$cur")
	fi
	# bash replaces only the part of cur after its last '=' or ':'
	# (matrix stages: sweep@lr=0.1,depth=3)
	local wb=${cur%"${cur##*[=:]}"}
	[ -n "$wb" ] && COMPREPLY=("${COMPREPLY[@]#"$wb"}")
	return 0
}

complete -F _pipe pipe
