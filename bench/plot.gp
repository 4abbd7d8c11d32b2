# bench/plot.gp: the figures of a bench/run.sh result directory.
#
#   gnuplot -e "dir='bench/results/<stamp>'" bench/plot.gp
#
# Reads the files bench/report.py writes there (plotvars.gp, study*.dat,
# ratios.dat, memory.dat) and writes pagesize.png, ratios.png, memory.png.
# Terminal: pngcairo (Debian's gnuplot-nox has it), else png (libgd).

if (!exists("dir")) dir = "."
load dir."/plotvars.gp"

cairo = strstrt(GPVAL_TERMINALS, "pngcairo") > 0
if (cairo) {
	set terminal pngcairo size 1100,520 font "sans,10" noenhanced
} else {
	set terminal png size 1100,520 noenhanced
}
MiB = 1048576.0

# ---- the page-size study: run time against page size, one line per buffer size;
# runs past the time limit are marked at the limit (no result)
if (n_studies > 0) {
	set output dir."/pagesize.png"
	set multiplot layout 1, n_studies title "Page-size study: cold run time through umapfs (dashed: kernel mmap of the plain file; triangles: timed out, no result)"
	set logscale x 2
	set logscale y
	set xlabel "umapfs page size"
	set ylabel "run time (s)"
	set grid
	set key below horizontal
	set xtics ("4K" 4096, "8K" 8192, "16K" 16384, "32K" 32768, "64K" 65536, "128K" 131072, \
		   "256K" 262144, "512K" 524288, "1M" 1048576, "2M" 2097152, "4M" 4194304, \
		   "8M" 8388608, "16M" 16777216, "32M" 33554432, "64M" 67108864)
	set xrange [3000:5600000]
	do for [s = 1:n_studies] {
		name = value(sprintf("study%d_name", s))
		bufs = value(sprintf("study%d_buffers", s))
		kern = value(sprintf("study%d_kernel", s))
		nto = value(sprintf("study%d_ntimeouts", s))
		set title name
		f = sprintf("%s/study%d.dat", dir, s)
		ft = sprintf("%s/study%d_timeouts.dat", dir, s)
		if (words(bufs) > 0 && nto > 0) {
			plot for [i = 1:words(bufs)] f index (i - 1) using 1:2:3:4 with yerrorlines lw 2 pt 7 \
				title "buffer_size ".word(bufs, i), \
			     ft using 1:2:3 with labels point pt 8 ps 2 lc rgb "red" offset 0, 1 \
				title "timed out (buffer_size above)", \
			     kern with lines dt 2 lw 2 lc rgb "black" title "kernel mmap"
		}
		if (words(bufs) > 0 && nto == 0) {
			plot for [i = 1:words(bufs)] f index (i - 1) using 1:2:3:4 with yerrorlines lw 2 pt 7 \
				title "buffer_size ".word(bufs, i), \
			     kern with lines dt 2 lw 2 lc rgb "black" title "kernel mmap"
		}
		if (words(bufs) == 0) {
			plot ft using 1:2:3 with labels point pt 8 ps 2 lc rgb "red" offset 0, 1 \
				title "timed out (buffer_size above)", \
			     kern with lines dt 2 lw 2 lc rgb "black" title "kernel mmap"
		}
	}
	unset multiplot
	unset logscale
	unset xlabel
	unset title
	set autoscale x
	set xtics autofreq
}

# ---- ratio bars: umapfs against each baseline, on a log axis from parity (1):
# up: umapfs faster, down: slower
if (n_ratios > 0) {
	w = n_ratios * 34 + 300
	w = (w < 1100) ? 1100 : w
	if (cairo) {
		set terminal pngcairo size w,640 font "sans,10" noenhanced
	} else {
		set terminal png size w,640 noenhanced
	}
	set output dir."/ratios.png"
	set title "umapfs speed relative to each baseline (medians; > 1: umapfs faster, < 1: slower)"
	set style fill solid 0.8 border -1
	set logscale y
	lo = ratio_min < 0.5 ? ratio_min / 2 : 0.25
	hi = ratio_max > 2 ? ratio_max * 3 : 4
	set yrange [lo:hi]
	set ylabel "ratio (log scale)"
	set xrange [-0.6:n_ratios - 0.4]
	set xtics rotate by -45 font ",8" nomirror
	set grid ytics
	set key outside top center horizontal
	set bmargin 16
	set rmargin 18
	# one bar from 1 to the ratio per row, coloured by baseline (column 4)
	plot dir."/ratios.dat" using 0:(1):xtic(1) with points pt -1 notitle \
		, for [i = 1:n_bases] dir."/ratios.dat" \
		using 0:(1):($0 - 0.38):($0 + 0.38):($4 == i ? ($3 < 1 ? $3 : 1) : NaN):($4 == i ? ($3 < 1 ? 1 : $3) : NaN) \
		with boxxyerror lc i title value(sprintf("base%d", i)) \
		, 1 with lines dt 2 lc rgb "black" title "parity" \
		, dir."/ratios.dat" using 0:($3 < 1 ? $3 / 1.35 : $3 * 1.25):(sprintf("%.2g", $3)) with labels font ",7" notitle
	unset logscale y
	unset xtics
	set xtics
	set bmargin
	set rmargin
	set autoscale
	if (cairo) {
		set terminal pngcairo size 1100,520 font "sans,10" noenhanced
	} else {
		set terminal png size 1100,520 noenhanced
	}
}

# ---- memory: peak daemon RSS and the view's kernel-cached bytes against buffer_size
if (n_memory > 0) {
	w = n_memory * 34 + 300
	w = (w < 1100) ? 1100 : w
	if (cairo) {
		set terminal pngcairo size w,600 font "sans,10" noenhanced
	} else {
		set terminal png size w,600 noenhanced
	}
	set output dir."/memory.png"
	set title "Memory of each mount: daemon peak RSS + the view's pages in the kernel cache, against buffer_size"
	set style fill solid 0.8 border -1
	set boxwidth 0.6
	set ylabel "MiB (log scale)"
	set logscale y
	set xrange [-0.6:n_memory - 0.4]
	set xtics rotate by -45 font ",8" nomirror
	set grid ytics
	set key inside top left
	set bmargin 14
	set yrange [1:*]
	plot dir."/memory.dat" using 0:(($3 + $4) / MiB):xtic(1) with boxes lc rgb "#4c72b0" title "kernel cache (fincore)", \
	     "" using 0:($3 / MiB) with boxes lc rgb "#dd8452" title "daemon RSS (VmHWM)", \
	     "" using 0:($2 / MiB) with points pt 9 ps 2 lc rgb "black" title "buffer_size"
}
