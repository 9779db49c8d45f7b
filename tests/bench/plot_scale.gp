# Time per stage against the stage count, log-log: pipe, make and ninja on
# workload 10 of tests/bench/run.sh (tests/bench/scale.sh). Flat lines are
# linear cost; a line that climbs is a cost growing faster than the work.
#   gnuplot -e "datafile='...'; outfile='...'; subtitle='...'" plot_scale.gp
# datafile: lines "kind tool N microseconds-per-stage", kind full, noop or
# one (a run after one change: its whole time divided by N).
set terminal pngcairo size 1280,640 font "sans,11" noenhanced
set output outfile
set title "time per stage against the number of stages (log-log; flat is linear)\n" . subtitle
set logscale xy
set xlabel "stages"
set ylabel "microseconds per stage"
set grid xtics ytics lc rgb "#dddddd"
set key outside right
color(t) = t eq "pipe" ? "#d62728" : t eq "make" ? "#1f77b4" : \
	t eq "ninja" ? "#2ca02c" : "#7f7f7f"
dash(k) = k eq "full" ? 1 : k eq "noop" ? 2 : 3
name(k) = k eq "full" ? "full run -j2" : k eq "noop" ? "no-op check" : "one change"
pick(k, t) = (strcol(1) eq k && strcol(2) eq t) ? $4 : NaN
kinds = "full noop one"
tools = "pipe make ninja"
plot for [i = 1:9] datafile \
	using 3:(pick(word(kinds, (i - 1) / 3 + 1), word(tools, (i - 1) % 3 + 1))) \
	with linespoints lw 2 pt 7 dt dash(word(kinds, (i - 1) / 3 + 1)) \
	lc rgb color(word(tools, (i - 1) % 3 + 1)) \
	title word(tools, (i - 1) % 3 + 1) . ", " . name(word(kinds, (i - 1) / 3 + 1))
