# Grouped bars, log scale: pipe against its peers on workloads 1 and 5 of
# tests/bench/run.sh.
#   gnuplot -e "datafile='...'; outfile='...'; subtitle='...'; tools='pipe make'; groups=N" plot.gp
# datafile: a header line "group" and the tools, then one line per group:
# "label" and a median in seconds per tool, ? when that tool has none.
set terminal pngcairo size 1280,640 font "sans,11" noenhanced
set output outfile
set title "pipe vs peers: wall time, median (log scale; lower is better)\n" . subtitle
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1.5
set style fill solid 0.85 border -1
set boxwidth 0.95
set logscale y
set yrange [0.0005:*]
set ylabel "seconds"
set grid ytics lc rgb "#dddddd"
set key below horizontal
set xtics nomirror
set ytics ("0.5 ms" 0.0005, "1 ms" 0.001, "10 ms" 0.01, "0.1 s" 0.1, "1 s" 1, "10 s" 10, \
	"100 s" 100, "1000 s" 1000)
set bmargin 6
set xrange [-0.6:groups - 0.4]
n = words(tools)
color(t) = t eq "pipe" ? "#d62728" : t eq "make" ? "#1f77b4" : \
	t eq "ninja" ? "#2ca02c" : t eq "snakemake" ? "#9467bd" : \
	t eq "dvc" ? "#ff7f0e" : "#7f7f7f"
fmt(x) = x < 1 ? sprintf("%.0f ms", x * 1000) : sprintf("%.2g s", x)
w = 1.0 / (n + 1.5)
# $0 counts the header line, which the label plots read as data
pos(j) = $0 - 1 + (j - (n - 1) / 2.0) * w
plot for [k = 1:n] datafile using (column(k + 1)):xtic(1) \
	title columnheader(k + 1) lc rgb color(word(tools, k)), \
     for [k = 1:n] datafile using (pos(k - 1)):(column(k + 1)):(fmt(column(k + 1))) \
	with labels offset 0, 0.7 font ",7" notitle
