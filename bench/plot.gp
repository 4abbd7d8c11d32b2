# bench/plot.gp: the figures of a bench/run.sh result directory.
#
#   gnuplot -e "dir='bench/results/<stamp>'" bench/plot.gp
#
# Reads the files bench/report.py writes there (plotvars.gp, study*.dat,
# ratios.dat, memory.dat) and writes pagesize.png, ratios.png, memory.png.
# Terminal: pngcairo (Debian's gnuplot-nox has it), else png (libgd).

if (!exists("dir")) dir = "."
load dir."/plotvars.gp"

if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
	set terminal pngcairo size 1100,520 font "sans,10" noenhanced
} else {
	set terminal png size 1100,520 noenhanced
}
MiB = 1048576.0

# ---- the page-size study: run time against page size, one line per buffer size
if (n_studies > 0) {
	set output dir."/pagesize.png"
	set multiplot layout 1, n_studies title "Page-size study: cold run time through umapfs (dashed: kernel mmap of the plain file)"
	set logscale x 2
	set logscale y
	set xlabel "umapfs page size"
	set ylabel "run time (s)"
	set grid
	set key top left
	set xtics ("4K" 4096, "8K" 8192, "16K" 16384, "32K" 32768, "64K" 65536, "128K" 131072, \
		   "256K" 262144, "512K" 524288, "1M" 1048576, "2M" 2097152, "4M" 4194304, \
		   "8M" 8388608, "16M" 16777216, "32M" 33554432, "64M" 67108864)
	set xrange [3000:5600000]
	do for [s = 1:n_studies] {
		name = value(sprintf("study%d_name", s))
		bufs = value(sprintf("study%d_buffers", s))
		kern = value(sprintf("study%d_kernel", s))
		set title name
		f = sprintf("%s/study%d.dat", dir, s)
		plot for [i = 1:words(bufs)] f index (i - 1) using 1:2:3:4 with yerrorlines lw 2 pt 7 \
			title "buffer_size ".word(bufs, i), \
		     kern with lines dt 2 lw 2 lc rgb "black" title "kernel mmap"
	}
	unset multiplot
	unset logscale
	unset xlabel
	set autoscale x
	set xtics autofreq
}

# ---- ratio bars: umapfs against each baseline
if (n_ratios > 0) {
	set output dir."/ratios.png"
	set size 1, 1
	set title "umapfs speed relative to each baseline (> 1: umapfs faster; medians)"
	set style fill solid 0.8 border -1
	set boxwidth 0.7
	set ylabel "ratio"
	stats dir."/ratios.dat" using 3 nooutput
	set yrange [0:(STATS_max > 1 ? STATS_max : 1) * 1.15]
	set xrange [-0.6:n_ratios - 0.4]
	set xtics rotate by -35 font ",8"
	set grid ytics
	set key top right
	set bmargin 9
	plot dir."/ratios.dat" using 0:3:4:xtic(1) with boxes lc variable notitle, \
	     1 with lines dt 2 lc rgb "black" title "parity", \
	     dir."/ratios.dat" using 0:3:(sprintf("%.2f", $3)) with labels offset 0, 0.7 notitle
	unset xtics
	set xtics
	set bmargin
	set autoscale
}

# ---- memory: peak daemon RSS and the view's kernel-cached bytes against buffer_size
if (n_memory > 0) {
	set output dir."/memory.png"
	set title "Memory of each mount: daemon peak RSS + the view's pages in the kernel cache, against buffer_size"
	set style fill solid 0.8 border -1
	set boxwidth 0.6
	set ylabel "MiB"
	set xrange [-0.6:n_memory - 0.4]
	set xtics rotate by -35 font ",8"
	set grid ytics
	set key outside right top
	set bmargin 9
	set yrange [0:*]
	plot dir."/memory.dat" using 0:(($3 + $4) / MiB):xtic(1) with boxes lc rgb "#4c72b0" title "kernel cache (fincore)", \
	     "" using 0:($3 / MiB) with boxes lc rgb "#dd8452" title "daemon RSS (VmHWM)", \
	     "" using 0:($2 / MiB) with points pt 9 ps 2 lc rgb "black" title "buffer_size", \
	     "" using 0:(($2 + 64 * MiB) / MiB) with points pt 2 ps 1.5 lc rgb "red" title "buffer_size + 64 MiB"
}
