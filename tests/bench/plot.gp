# Grouped bars, log scale: pipe against its peers on workloads 1 and 5 of
# tests/bench/run.sh.
#   gnuplot -e "datafile='...'; outfile='...'; subtitle='...'" plot.gp
# datafile: a header line "group pipe make ninja snakemake dvc", then one
# line per group: "label" and a median in seconds per tool, ? when none.
set terminal pngcairo size 1280,640 font "sans,11" noenhanced
set output outfile
set title "pipe vs peers: wall time, median (log scale; lower is better)\n" . subtitle
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1.5
set style fill solid 0.85 border -1
set boxwidth 0.95
set logscale y
set yrange [0.001:*]
set ylabel "seconds"
set grid ytics lc rgb "#dddddd"
set key top left horizontal
set xtics nomirror
set ytics ("1 ms" 0.001, "10 ms" 0.01, "0.1 s" 0.1, "1 s" 1, "10 s" 10, \
	"100 s" 100, "1000 s" 1000)
set bmargin 4
set xrange [-0.6:*]
fmt(x) = x < 1 ? sprintf("%.0f ms", x * 1000) : sprintf("%.1f s", x)
w = 1.0 / (5 + 1.5)
# $0 counts the header line, which these plots read as data
pos(k) = $0 - 1 + (k - 2) * w
plot datafile using 2:xtic(1) title columnheader(2) lc rgb "#d62728", \
     '' using 3 title columnheader(3) lc rgb "#1f77b4", \
     '' using 4 title columnheader(4) lc rgb "#2ca02c", \
     '' using 5 title columnheader(5) lc rgb "#9467bd", \
     '' using 6 title columnheader(6) lc rgb "#ff7f0e", \
     for [k = 0:4] '' using (pos(k)):(column(k + 2)):(fmt(column(k + 2))) \
	with labels offset 0, 0.7 font ",8" notitle
