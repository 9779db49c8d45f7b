# Workload 10 of tests/bench/run.sh (sourced by it): scale. pipe, make and
# ninja on N independent `cp in/i out/i` stages for each N of $SCALE: full
# run, no-op check and a run after one input changed, side by side, with
# pipe's peak RSS; time per stage against N for the three tools is drawn
# by plot_scale.gp. The issue's targets are checked at 100,000 stages;
# smaller N are shown for the growth.

# scale_gen DIR N: pipe, make and ninja's N stages, written by awk (a shell
# loop takes minutes at 100,000).
scale_gen() {
	local w=$1 n=$2 t
	for t in pipe make ninja; do
		rm -rf "${w:?}/$t"
		mkdir -p "$w/$t/in" "$w/$t/out"
		(cd "$w/$t" && awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) { f = "in/" i; print i > f; close(f) } }')
	done
	awk -v n="$n" 'BEGIN { print "stages:"; for (i = 0; i < n; i++)
		printf "  s%d:\n    cmd: cp in/%d out/%d\n    inputs: [in/%d]\n    outputs: [out/%d]\n", i, i, i, i, i }' >"$w/pipe/Pipefile"
	awk -v n="$n" 'BEGIN { printf "all:"; for (i = 0; i < n; i++) printf " out/%d", i
		printf "\nout/%%: in/%%\n\tcp $< $@\n" }' >"$w/make/Makefile"
	awk -v n="$n" 'BEGIN { printf "rule cp\n  command = cp $in $out\n"
		for (i = 0; i < n; i++) printf "build out/%d: cp in/%d\n", i, i }' >"$w/ninja/build.ninja"
}

SCALE_PLOT=() # "kind|tool|N|median seconds"
w10() {
	local n w t k f full_runs id
	for n in $SCALE; do
		w=$work/w10-$n
		say "10: $n stages: writing them"
		scale_gen "$w" "$n"
		L[w10.$n.full.pipe]="pipe run -j2" L[w10.$n.full.make]="make -j2" L[w10.$n.full.ninja]="ninja -j2"
		L[w10.$n.noop.pipe]="pipe status" L[w10.$n.noop.make]="make -q" L[w10.$n.noop.ninja]="ninja -n"
		L[w10.$n.one.pipe]="pipe run -j2" L[w10.$n.one.make]="make -j2" L[w10.$n.one.ninja]="ninja -j2"
		L[w10.$n.rss.validate]="pipe validate" L[w10.$n.rss.noop]="pipe status"
		L[w10.$n.rss.full]="pipe run -j2" L[w10.$n.rss.one]="pipe run -j2"
		# a full run takes minutes per tool from 20,000 on: once each
		full_runs=$RUNS
		[ "$n" -lt 20000 ] || full_runs=1
		if [ "$SCALE_FULL" = 1 ]; then
			say "10: $n stages, full runs"
			for _ in $(seq "$full_runs"); do
				for t in pipe make ninja; do fresh "$w" $t; done
				tm "w10.$n.full.pipe" 0 "$w/pipe" "$PIPE" run -q -j2
				tm "w10.$n.full.make" 0 "$w/make" make -s -j2
				tm "w10.$n.full.ninja" 0 "$w/ninja" ninja -j2
			done
		else # the outputs, untimed: the one-change rows start from them
			(cd "$w/pipe" && "$PIPE" run -q -j2 && cd ../make && make -s -j2 &&
				cd ../ninja && ninja -j2) >/dev/null 2>&1 || say "bench: 10: $n stages: a first run failed"
			last_pipe=$EPOCHREALTIME
		fi
		for t in pipe make ninja; do count_out "$w/$t" "$n" "$t"; done
		racy_wait
		(cd "$w/pipe" && "$PIPE" status && cd ../make && make -q && cd ../ninja &&
			ninja -n) >/dev/null 2>&1 || true
		if [ "$SCALE_FULL" = 1 ]; then
			say "10: $n stages, no-op checks"
			for _ in $(seq "$RUNS"); do
				tm "w10.$n.noop.pipe" 0 "$w/pipe" "$PIPE" status
				tm "w10.$n.noop.make" 0 "$w/make" make -q
				tm "w10.$n.noop.ninja" 0 "$w/ninja" ninja -n
			done
			rss "w10.$n.rss.validate" "$w/pipe" "$PIPE" validate
			rss "w10.$n.rss.noop" "$w/pipe" "$PIPE" status
		fi
		say "10: $n stages, runs after one change"
		for k in $(seq "$RUNS"); do
			f=in/$((k * 37 % n))
			# make and ninja compare mtimes: ahead of the outputs'
			for t in pipe make ninja; do
				echo "changed $k" >"$w/$t/$f"
				touch -d "+2 seconds" "$w/$t/$f"
			done
			tm "w10.$n.one.pipe" 0 "$w/pipe" "$PIPE" run -q -j2
			tm "w10.$n.one.make" 0 "$w/make" make -s -j2
			tm "w10.$n.one.ninja" 0 "$w/ninja" ninja -j2
			for t in pipe make ninja; do
				[ "$(cat "$w/$t/out/${f#in/}")" = "changed $k" ] || say "bench: 10: $t did not redo $f"
			done
		done
		echo "changed again" >"$w/pipe/in/$(((RUNS + 1) * 37 % n))"
		rss "w10.$n.rss.one" "$w/pipe" "$PIPE" run -q -j2
		if [ "$SCALE_FULL" = 1 ]; then
			fresh "$w" pipe
			rss "w10.$n.rss.full" "$w/pipe" "$PIPE" run -q -j2
		fi
		[ "${KEEP:-0}" = 1 ] || rm -rf "$w"
	done
	header "10. scale: N independent cp stages"
	id=a
	for n in $SCALE; do
		if [ "$n" -ge 100000 ]; then
			row "10$id" "$n stages, full run" "w10.$n.full.pipe" "w10.$n.full.ninja" "ratio<=1.1"
			row "10$id" "$n stages, full run" "w10.$n.full.pipe" "w10.$n.full.make" "ratio<=1.1"
			row "10$id" "$n stages, no-op check" "w10.$n.noop.pipe" "w10.$n.noop.ninja" "ratio<=1.0"
			row "10$id" "$n stages, run after one change" "w10.$n.one.pipe" "w10.$n.one.ninja" "ratio<=2"
			row "10$id" "$n stages, run after one change" "w10.$n.one.pipe" "w10.$n.one.make" info
			row "10$id" "$n stages, run after one change" "w10.$n.one.pipe" - "time<1"
			for k in validate noop one full; do
				row "10$id" "$n stages, peak RSS ($k)" "w10.$n.rss.$k" - "rss<100"
			done
		else
			row "10$id" "$n stages, full run" "w10.$n.full.pipe" "w10.$n.full.ninja" info
			row "10$id" "$n stages, full run" "w10.$n.full.pipe" "w10.$n.full.make" info
			row "10$id" "$n stages, no-op check" "w10.$n.noop.pipe" "w10.$n.noop.ninja" info
			row "10$id" "$n stages, run after one change" "w10.$n.one.pipe" "w10.$n.one.ninja" info
			row "10$id" "$n stages, run after one change" "w10.$n.one.pipe" "w10.$n.one.make" info
			for k in validate noop one full; do
				row "10$id" "$n stages, peak RSS ($k)" "w10.$n.rss.$k" - "rss<100"
			done
		fi
		id=$(echo "$id" | tr a-y b-z)
		for t in pipe make ninja; do
			for k in full noop one; do
				[ -z "${T[w10.$n.$k.$t]:-}" ] ||
					SCALE_PLOT+=("$k|$t|$n|$(stats "${T[w10.$n.$k.$t]}" | cut -d' ' -f1)")
			done
		done
	done
	note "10: full runs from 20,000 stages on run once per tool (minutes each), no-op and one-change rows $RUNS times; the changed input is dated 2 s ahead so that make and ninja, which compare mtimes, see it"
}

# plot_scale OUT: time per stage against N (log-log), one line per tool
# and kind, from SCALE_PLOT.
plot_scale() {
	[ "${#SCALE_PLOT[@]}" -gt 0 ] && command -v gnuplot >/dev/null || return 0
	printf '%s\n' "${SCALE_PLOT[@]}" |
		awk -F'|' '{ printf "%s %s %s %.3f\n", $1, $2, $3, $4 / $3 * 1e6 }' |
		sort -k1,1 -k2,2 -k3,3n >"$1/plot_scale.dat"
	gnuplot -e "datafile='$1/plot_scale.dat'; outfile='$1/plot_scale.png'; subtitle='$date, commit $commit$dirty, $(nproc) cores'" \
		"$root/tests/bench/plot_scale.gp" && echo "wrote $1/plot_scale.png" || echo "plot: gnuplot failed"
}
