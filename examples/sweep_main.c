/*
 * umapfs-sweep: the transient-detection median sweep (see umapfs-sweep(1)).
 * Built twice: as umapfs-sweep, and with -DSWEEP_MPI as umapfs-sweep-mpi,
 * which splits the work among MPI ranks and merges the candidates on rank 0.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef SWEEP_MPI
#include <mpi.h>
#endif

#include "sweep.h"

static const char *prog = "umapfs-sweep";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [options] CUBE\n"
		"CUBE: a native float32 cube (the mount's cube.f32 or umapfs-stitch output; shape and\n"
		"times from index.txt or cube.fits beside it), a FITS cube (cube.fits), or with\n"
		"--backend cfitsio a directory of frames.\n"
		"  --backend native|fits|cfitsio  how to read CUBE (default: from the path)\n"
		"  --index FILE        shape and frame times (index.txt format, or one MJD per line)\n"
		"  --random N          N random vectors (default 100000)\n"
		"  --exhaustive        every start pixel x a velocity grid\n"
		"  --seed S            random seed (default 1)\n"
		"  --vmax V --vmin V   speed limits, pixels per hour (default 15, 0)\n"
		"  --vstep V           velocity grid step (default 3/(time span): 3 px of drift)\n"
		"  --region X0:X1,Y0:Y1  start pixels (half open; default the whole frame)\n"
		"  --min-count N       samples a path needs (default half the frames)\n"
		"  --floor M           only medians >= M are candidates\n"
		"  --keep N            candidates kept before suppression (default 4096)\n"
		"  --top K             candidates reported (default 10)\n"
		"  --radius R          suppression: tracks nearer than R px in half the frames (default 4)\n"
		"  --threads N         threads (default: all cores, shared among local MPI ranks)\n"
		"  --format csv|json   output format (default csv)\n"
		"  --output FILE       write results there (default stdout)\n"
		"  --png DIR           write DIR/cand-NN.png: median stack along each track\n"
		"  --paths FILE        evaluate the paths in FILE (x0,y0,vx,vy per line) instead\n"
		"  --raw               medians of the pixels themselves; by default each sample is\n"
		"                      the pixel minus its median over all frames (static sky)\n"
		"  --no-refine         report the grid paths as found (default: refine each reported\n"
		"                      path within 1 px and one grid step, see umapfs-sweep(1))\n"
		"  --no-willneed       do not ask the kernel to read the band ahead (MADV_WILLNEED)\n"
		"  --budget SIZE       bytes of the cube that stay resident (K/M/G suffixes): how far\n"
		"                      ahead to ask (default: the mount's buffer_size when CUBE is on\n"
		"                      a umapfs mount, else no limit; 0: no limit)\n"
		"  --no-samples        leave the samples out of the output\n"
		"  --progress|--no-progress  progress bar on stderr (default: if a terminal)\n"
		"  --truth FILE        compare with umapfs-mknight's truth.csv: print each mover\n"
		"                      with the best candidate near its track, and recovery by flux\n"
		"  --quiet             no summary on stderr\n",
		prog);
}

static int parse_region(const char *s, struct sweep_opts *o)
{
	return sscanf(s, "%d:%d,%d:%d", &o->x_lo, &o->x_hi, &o->y_lo, &o->y_hi) == 4 &&
			       o->x_lo >= 0 && o->y_lo >= 0 && o->x_hi > o->x_lo && o->y_hi > o->y_lo
		       ? 0
		       : -1;
}

/* A byte count with an optional K, M or G suffix (powers of 1024). */
static int size_arg(const char *opt, const char *s, uint64_t *out)
{
	char *e;
	errno = 0;
	unsigned long long v = strtoull(s, &e, 10);
	unsigned sh = 0;
	if (*e == 'K' || *e == 'k')
		sh = 10, e++;
	else if (*e == 'M' || *e == 'm')
		sh = 20, e++;
	else if (*e == 'G' || *e == 'g')
		sh = 30, e++;
	if (e == s || *e || errno || s[0] == '-' || (sh && v > (~0ULL >> sh))) {
		fprintf(stderr, "%s: %s: '%s' is not a size (bytes, with K, M or G)\n", prog, opt, s);
		return -1;
	}
	*out = (uint64_t)v << sh;
	return 0;
}

static int num(const char *opt, const char *s, double *out)
{
	char *e;
	errno = 0;
	double v = strtod(s, &e);
	if (e == s || *e || errno || !isfinite(v)) {
		fprintf(stderr, "%s: %s: '%s' is not a number\n", prog, opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* Read "x0,y0,vx,vy" lines (anything else that does not start with a number is skipped). */
static long read_paths(const char *path, struct sweep_cand **out)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	struct sweep_cand *p = NULL;
	long n = 0, cap = 0, lineno = 0;
	char line[1024];
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9')))
			continue;
		double x, y, vx, vy;
		if (sscanf(s, "%lf ,%lf ,%lf ,%lf", &x, &y, &vx, &vy) != 4 || x != floor(x) ||
		    y != floor(y) || fabs(x) > 1e9 || fabs(y) > 1e9 || !isfinite(vx) || !isfinite(vy)) {
			fprintf(stderr, "%s: %s:%ld: expected 'x0,y0,vx,vy' with integer x0,y0\n", prog,
				path, lineno);
			free(p);
			fclose(f);
			return -1;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			struct sweep_cand *np = realloc(p, cap * sizeof(*p));
			if (!np) {
				free(p);
				fclose(f);
				fprintf(stderr, "%s: out of memory\n", prog);
				return -1;
			}
			p = np;
		}
		memset(&p[n], 0, sizeof(p[n]));
		p[n].x0 = (int32_t)x;
		p[n].y0 = (int32_t)y;
		p[n].vx = (float)vx;
		p[n].vy = (float)vy;
		p[n].idx = (uint64_t)n;
		n++;
	}
	fclose(f);
	*out = p;
	return n;
}

static void write_samples(FILE *o, const float *v, int m, int json)
{
	for (int i = 0; i < m; i++)
		fprintf(o, i ? (json ? ", %.9g" : ";%.9g") : "%.9g", v[i]);
}

#define STAMP_R 12 /* a stamp is (2 STAMP_R + 1)^2 pixels around the track */

static int stamp_png(const struct sweep_cube *c, void *fh, const struct sweep_cand *p, const char *file)
{
	const int r = STAMP_R, s = 2 * r + 1, zoom = 5;
	float img[(2 * STAMP_R + 1) * (2 * STAMP_R + 1)], sorted[(2 * STAMP_R + 1) * (2 * STAMP_R + 1)];
	int ret = sweep_stamp(c, fh, p, r, img);
	if (ret)
		return ret;
	int n = 0;
	for (int i = 0; i < s * s; i++)
		if (img[i] == img[i])
			sorted[n++] = img[i];
	float lo = 0, hi = 1;
	if (n) {
		/* display range: 10th percentile to the maximum */
		for (int i = 1; i < n; i++)
			for (int j = i; j > 0 && sorted[j] < sorted[j - 1]; j--) {
				float t = sorted[j];
				sorted[j] = sorted[j - 1];
				sorted[j - 1] = t;
			}
		lo = sorted[n / 10];
		hi = sorted[n - 1];
	}
	if (!(hi > lo))
		hi = lo + 1;
	unsigned char pix[125 * 125];
	for (int y = 0; y < s * zoom; y++)
		for (int x = 0; x < s * zoom; x++) {
			float v = img[(y / zoom) * s + x / zoom];
			double g = v == v ? (v - lo) / (hi - lo) : 0;
			g = g < 0 ? 0 : g > 1 ? 1 : g;
			pix[y * s * zoom + x] = (unsigned char)lrint(255 * g);
		}
	return sweep_png_write(file, pix, s * zoom, s * zoom);
}

/*
 * For every mover of a truth file, find the best candidate of the reported
 * list whose start lies within 2 px of the mover at t0; it is a recovery if
 * its velocity is within half a grid step of the truth in each component.
 * Prints a table and the recovered fraction per flux on stdout.  Returns the
 * number of movers not recovered, or -1 if the file cannot be read.
 */
static int compare_truth(const struct sweep_cube *c, const struct sweep_opts *o, const char *path,
			 const struct sweep_cand *cand, size_t nc)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	double step = sweep_vstep(c, o);
	double fl[256];
	int tot[256] = {0}, got[256] = {0}, nfl = 0, missed = 0, n = 0;
	char line[1024];
	char *used = calloc(nc ? nc : 1, 1);
	printf("\n%-4s %9s %8s %8s %7s %7s | %4s %5s %5s %7s %7s %9s  %s\n", "id", "flux", "x0", "y0", "vx",
	       "vy", "rank", "x0", "y0", "vx", "vy", "median", "result");
	while (fgets(line, sizeof(line), f)) {
		int id;
		double x, y, vx, vy, flux;
		if (sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf", &id, &x, &y, &vx, &vy, &flux) != 6)
			continue;
		n++;
		long best = -1;
		for (size_t i = 0; i < nc; i++)
			if (hypot(cand[i].x0 - x, cand[i].y0 - y) <= 2.0) {
				best = (long)i;
				break;
			}
		int ok = best >= 0 && fabs(cand[best].vx - vx) <= step / 2 + 1e-6 &&
			 fabs(cand[best].vy - vy) <= step / 2 + 1e-6;
		if (best >= 0)
			used[best] = 1;
		int fi;
		for (fi = 0; fi < nfl && fl[fi] != flux; fi++)
			;
		if (fi == nfl && nfl < 256)
			fl[nfl++] = flux;
		if (fi < 256) {
			tot[fi]++;
			got[fi] += ok;
		}
		missed += !ok;
		printf("%-4d %9.1f %8.2f %8.2f %7.2f %7.2f | ", id, flux, x, y, vx, vy);
		if (best >= 0)
			printf("%4ld %5d %5d %7.2f %7.2f %9.2f  %s\n", best + 1, cand[best].x0, cand[best].y0,
			       cand[best].vx, cand[best].vy, cand[best].median,
			       ok ? "recovered" : "velocity off");
		else
			printf("%4s %5s %5s %7s %7s %9s  %s\n", "-", "-", "-", "-", "-", "-", "missed");
	}
	fclose(f);
	int fp = 0;
	for (size_t i = 0; i < nc; i++)
		fp += !used[i];
	free(used);
	printf("recovered %d of %d movers (within 2 px at t0 and %.3g px/h = half a grid step); "
	       "%d reported candidates match no mover\n",
	       n - missed, n, step / 2, fp);
	/* by flux, ascending */
	for (int a = 0; a < nfl; a++)
		for (int b = a + 1; b < nfl; b++)
			if (fl[b] < fl[a]) {
				double t = fl[a];
				fl[a] = fl[b];
				fl[b] = t;
				int u = tot[a];
				tot[a] = tot[b];
				tot[b] = u;
				u = got[a];
				got[a] = got[b];
				got[b] = u;
			}
	if (nfl > 1 && nfl < n) {
		printf("completeness: flux recovered/planted\n");
		for (int a = 0; a < nfl; a++)
			printf("completeness %9.1f %d/%d %.2f\n", fl[a], got[a], tot[a],
			       tot[a] ? (double)got[a] / tot[a] : 0.0);
	}
	fflush(stdout);
	return missed;
}

int main(int argc, char **argv)
{
	int rank = 0, nranks = 1;
#ifdef SWEEP_MPI
	prog = "umapfs-sweep-mpi";
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
#define EXIT(code)                                                                       \
	do {                                                                             \
		if ((code) != 0 && nranks > 1)                                           \
			MPI_Abort(MPI_COMM_WORLD, (code));                               \
		MPI_Finalize();                                                          \
		return (code);                                                           \
	} while (0)
#else
#define EXIT(code) return (code)
#endif
#define FAIL()              \
	do {                \
		status = 1; \
		goto done;  \
	} while (0)
	struct sweep_opts o;
	sweep_opts_init(&o);
	int backend = -1, top = 10, json = 0, samples = 1, quiet = 0, raw = 0, refine = 1;
	int progress = isatty(2), have_budget = 0;
	double radius = 4;
	const char *index = NULL, *outpath = NULL, *pngdir = NULL, *pathsfile = NULL, *truthfile = NULL;
	enum { O_BACKEND = 256, O_INDEX, O_RANDOM, O_EXH, O_SEED, O_VMAX, O_VMIN, O_VSTEP, O_REGION,
	       O_MINC, O_FLOOR, O_KEEP, O_TOP, O_RADIUS, O_THREADS, O_FORMAT, O_OUTPUT, O_PNG,
	       O_PATHS, O_NOWN, O_BUDGET, O_NOREF, O_TRUTH, O_RAW, O_NOSAMP, O_PROG, O_NOPROG, O_QUIET, O_HELP };
	static const struct option lo[] = {
		{"backend", 1, 0, O_BACKEND}, {"index", 1, 0, O_INDEX}, {"random", 1, 0, O_RANDOM},
		{"exhaustive", 0, 0, O_EXH}, {"seed", 1, 0, O_SEED}, {"vmax", 1, 0, O_VMAX},
		{"vmin", 1, 0, O_VMIN}, {"vstep", 1, 0, O_VSTEP}, {"region", 1, 0, O_REGION},
		{"min-count", 1, 0, O_MINC}, {"floor", 1, 0, O_FLOOR}, {"keep", 1, 0, O_KEEP},
		{"top", 1, 0, O_TOP}, {"radius", 1, 0, O_RADIUS}, {"threads", 1, 0, O_THREADS},
		{"format", 1, 0, O_FORMAT}, {"output", 1, 0, O_OUTPUT}, {"png", 1, 0, O_PNG},
		{"paths", 1, 0, O_PATHS}, {"raw", 0, 0, O_RAW}, {"no-refine", 0, 0, O_NOREF}, {"no-willneed", 0, 0, O_NOWN}, {"budget", 1, 0, O_BUDGET}, {"truth", 1, 0, O_TRUTH}, {"no-samples", 0, 0, O_NOSAMP}, {"progress", 0, 0, O_PROG},
		{"no-progress", 0, 0, O_NOPROG}, {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, O_HELP},
		{0, 0, 0, 0}};
	int ch;
	double d;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		const char *name = ch >= 256 && ch < O_HELP ? lo[ch - 256].name : "";
		switch (ch) {
		case O_BACKEND:
			if (!strcmp(optarg, "native"))
				backend = SWEEP_NATIVE;
			else if (!strcmp(optarg, "fits"))
				backend = SWEEP_FITS;
			else if (!strcmp(optarg, "cfitsio"))
				backend = SWEEP_CFITSIO;
			else {
				fprintf(stderr, "%s: --backend: '%s' is not native, fits or cfitsio\n", prog,
					optarg);
				EXIT(2);
			}
			break;
		case O_INDEX: index = optarg; break;
		case O_RANDOM:
			if (num(name, optarg, &d) || d < 1 || d > 4e9) {
				fprintf(stderr, "%s: --random: need 1..4e9 vectors\n", prog);
				EXIT(2);
			}
			o.nvec = (uint64_t)d;
			o.exhaustive = 0;
			break;
		case O_EXH: o.exhaustive = 1; break;
		case O_SEED:
			if (num(name, optarg, &d) || d < 0)
				EXIT(2);
			o.seed = (uint64_t)d;
			break;
		case O_VMAX:
			if (num(name, optarg, &o.vmax) || o.vmax < 0)
				EXIT(2);
			break;
		case O_VMIN:
			if (num(name, optarg, &o.vmin) || o.vmin < 0)
				EXIT(2);
			break;
		case O_VSTEP:
			if (num(name, optarg, &o.vstep) || o.vstep <= 0) {
				fprintf(stderr, "%s: --vstep must be > 0\n", prog);
				EXIT(2);
			}
			break;
		case O_REGION:
			if (parse_region(optarg, &o)) {
				fprintf(stderr, "%s: --region: expected X0:X1,Y0:Y1, got '%s'\n", prog, optarg);
				EXIT(2);
			}
			break;
		case O_MINC:
			if (num(name, optarg, &d) || d < 1 || d > 1e9)
				EXIT(2);
			o.min_count = (int)d;
			break;
		case O_FLOOR:
			if (num(name, optarg, &o.floor))
				EXIT(2);
			break;
		case O_KEEP:
			if (num(name, optarg, &d) || d < 1 || d > 1e8)
				EXIT(2);
			o.keep = (int)d;
			break;
		case O_TOP:
			if (num(name, optarg, &d) || d < 1 || d > 1e6)
				EXIT(2);
			top = (int)d;
			break;
		case O_RADIUS:
			if (num(name, optarg, &radius) || radius < 0)
				EXIT(2);
			break;
		case O_THREADS:
			if (num(name, optarg, &d) || d < 1 || d > 1024)
				EXIT(2);
			o.threads = (int)d;
			break;
		case O_FORMAT:
			if (!strcmp(optarg, "json"))
				json = 1;
			else if (!strcmp(optarg, "csv"))
				json = 0;
			else {
				fprintf(stderr, "%s: --format: '%s' is not csv or json\n", prog, optarg);
				EXIT(2);
			}
			break;
		case O_OUTPUT: outpath = optarg; break;
		case O_PNG: pngdir = optarg; break;
		case O_PATHS: pathsfile = optarg; break;
		case O_RAW: raw = 1; break;
		case O_NOREF: refine = 0; break;
		case O_NOWN: o.no_willneed = 1; break;
		case O_BUDGET:
			if (size_arg("--budget", optarg, &o.budget))
				EXIT(2);
			have_budget = 1;
			break;
		case O_TRUTH: truthfile = optarg; break;
		case O_NOSAMP: samples = 0; break;
		case O_PROG: progress = 1; break;
		case O_NOPROG: progress = 0; break;
		case O_QUIET: quiet = 1; break;
		case 'h':
		case O_HELP: usage(stdout); EXIT(0);
		default: usage(stderr); EXIT(2);
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		EXIT(2);
	}
	if (o.keep < top)
		o.keep = top;
	if (o.threads <= 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
		long local = ls ? atol(ls) : 1;
		if (local < 1)
			local = 1;
		o.threads = cpus / local > 0 ? (int)(cpus / local) : 1;
	}
	o.rank = rank;
	o.nranks = nranks;
	o.progress = progress && rank == 0;

	char err[1024];
	struct sweep_cube c;
	struct sweep_cand *cand = NULL;
	void *fh = NULL;
	float *sv = NULL;
	FILE *out = stdout;
	int status = 0;
	int ret = sweep_cube_open(&c, argv[optind], backend, index, err, sizeof(err));
	if (ret) {
		if (rank == 0)
			fprintf(stderr, "%s: %s\n", prog, err);
		FAIL();
	}
	if (!have_budget && c.map && sweep_mount_budget(argv[optind], &o.budget, &o.page) == 0 &&
	    rank == 0 && !quiet)
		fprintf(stderr, "%s: %s is on a umapfs mount: buffer %llu MiB, pages of %llu KiB\n", prog,
			argv[optind], (unsigned long long)(o.budget >> 20),
			(unsigned long long)(o.page >> 10));
	if (!raw && sweep_static_enable(&c) != 0) {
		fprintf(stderr, "%s: out of memory for the static sky image\n", prog);
		FAIL();
	}
	if (rank == 0 && outpath && !(out = fopen(outpath, "w"))) {
		fprintf(stderr, "%s: %s: %s\n", prog, outpath, strerror(errno));
		out = stdout;
		FAIL();
	}
	sv = malloc(c.n * sizeof(float));
	if (!sv) {
		fprintf(stderr, "%s: out of memory\n", prog);
		FAIL();
	}

	if (pathsfile) {
		/* evaluate given paths (rank 0 only) */
		if (rank == 0) {
			struct sweep_cand *p = NULL;
			long n = read_paths(pathsfile, &p);
			if (n < 0)
				FAIL();
			ret = sweep_eval_paths(&c, p, (size_t)n, o.threads, err, sizeof(err));
			if (ret) {
				fprintf(stderr, "%s: %s\n", prog, err);
				free(p);
				FAIL();
			}
			fprintf(out, "x0,y0,vx,vy,median,count\n");
			for (long i = 0; i < n; i++)
				fprintf(out, "%d,%d,%.9g,%.9g,%.17g,%d\n", p[i].x0, p[i].y0, p[i].vx, p[i].vy,
					p[i].median, p[i].count);
			free(p);
		}
		goto done;
	}

	struct sweep_stats st = {0};
	long nc = sweep_run(&c, &o, &cand, &st, err, sizeof(err));
	if (nc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		FAIL();
	}
#ifdef SWEEP_MPI
	if (nranks > 1) {
		int mine = (int)(nc * sizeof(struct sweep_cand));
		int *counts = NULL, *displs = NULL, total = 0;
		struct sweep_cand *all = NULL;
		if (rank == 0) {
			counts = calloc(nranks, sizeof(int));
			displs = calloc(nranks, sizeof(int));
		}
		MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
		if (rank == 0) {
			for (int i = 0; i < nranks; i++) {
				displs[i] = total;
				total += counts[i];
			}
			all = malloc(total ? total : 1);
		}
		MPI_Gatherv(cand, mine, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, MPI_COMM_WORLD);
		uint64_t mystat[2] = {st.paths, st.selected}, sum[2] = {0, 0};
		double tmax = 0;
		MPI_Reduce(mystat, sum, 2, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
		MPI_Reduce(&st.seconds, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
		free(cand);
		cand = all;
		if (rank == 0) {
			nc = (long)sweep_merge_top(all, total / sizeof(struct sweep_cand),
						   (size_t)o.keep);
			st.paths = sum[0];
			st.selected = sum[1];
			st.seconds = tmax;
		}
		free(counts);
		free(displs);
	}
#endif
	if (rank == 0 && c.backend == SWEEP_CFITSIO && !(fh = sweep_fh_open(&c, err, sizeof(err)))) {
		fprintf(stderr, "%s: %s\n", prog, err);
		FAIL();
	}
	if (rank == 0) {
		size_t k = sweep_suppress(&c, cand, (size_t)nc, radius, (size_t)top);
		/*
		 * Refinement, samples and stamps walk the top paths one at a
		 * time: ask for their rows first, one candidate ahead, so the
		 * reads run while the previous candidate is worked on.
		 */
		double step = sweep_vstep(&c, &o);
		int reach = (refine ? 4 + (int)ceil(step * (c.n > 1 ? c.dt[c.n - 1] : 0)) : 0) +
			    (pngdir ? STAMP_R : 0);
		if (!o.no_willneed && k)
			sweep_prefetch_paths(&c, cand, 1, reach);
		if (refine) {
			for (size_t i = 0; i < k; i++) {
				if (!o.no_willneed && i + 1 < k)
					sweep_prefetch_paths(&c, cand + i + 1, 1, reach);
				if (sweep_refine(&c, &cand[i], step) != 0)
					fprintf(stderr, "%s: refinement failed (out of memory)\n", prog);
			}
		}
		if (!quiet)
			fprintf(stderr,
				"%s: %s: %ldx%ldx%ld, %.3g h; %llu paths in %.3f s (%.4g paths/s) on %d "
				"thread(s) x %d rank(s); %llu medians computed\n",
				prog, c.path, c.n, c.h, c.w, c.n > 1 ? c.dt[c.n - 1] : 0.0,
				(unsigned long long)st.paths, st.seconds,
				st.seconds > 0 ? st.paths / st.seconds : 0.0, o.threads, nranks,
				(unsigned long long)st.selected);
		if (json)
			fprintf(out, "{\"cube\": \"%s\", \"frames\": %ld, \"rows\": %ld, \"columns\": %ld, "
				     "\"paths\": %llu, \"seconds\": %.6f, \"candidates\": [",
				c.path, c.n, c.h, c.w, (unsigned long long)st.paths, st.seconds);
		else
			fprintf(out, "rank,x0,y0,vx,vy,median,count%s\n", samples ? ",samples" : "");
		int out_reach = pngdir ? STAMP_R : 0;
		if (!o.no_willneed && k && (samples || pngdir))
			sweep_prefetch_paths(&c, cand, 1, out_reach);
		for (size_t i = 0; i < k; i++) {
			const struct sweep_cand *p = &cand[i];
			if (!o.no_willneed && i + 1 < k && (samples || pngdir))
				sweep_prefetch_paths(&c, cand + i + 1, 1, out_reach);
			int m = samples ? sweep_gather(&c, fh, p->x0, p->y0, p->vx, p->vy, sv) : 0;
			if (json) {
				fprintf(out, "%s\n  {\"rank\": %zu, \"x0\": %d, \"y0\": %d, \"vx\": %.6g, "
					     "\"vy\": %.6g, \"median\": %.10g, \"count\": %d",
					i ? "," : "", i + 1, p->x0, p->y0, p->vx, p->vy, p->median, p->count);
				if (samples) {
					fprintf(out, ", \"samples\": [");
					write_samples(out, sv, m, 1);
					fprintf(out, "]");
				}
				fprintf(out, "}");
			} else {
				fprintf(out, "%zu,%d,%d,%.6g,%.6g,%.10g,%d", i + 1, p->x0, p->y0, p->vx, p->vy,
					p->median, p->count);
				if (samples) {
					fputc(',', out);
					write_samples(out, sv, m, 0);
				}
				fputc('\n', out);
			}
			if (pngdir) {
				char file[4096];
				mkdir(pngdir, 0755);
				snprintf(file, sizeof(file), "%s/cand-%02zu.png", pngdir, i + 1);
				int e = stamp_png(&c, fh, p, file);
				if (e)
					fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(-e));
			}
		}
		if (json)
			fprintf(out, "\n]}\n");
		if (truthfile && compare_truth(&c, &o, truthfile, cand, k) < 0)
			FAIL();
	}
done:
	sweep_fh_close(&c, fh);
	free(cand);
	free(sv);
	sweep_cube_close(&c);
	if (out != stdout && fclose(out) != 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, outpath, strerror(errno));
		status = 1;
	}
	EXIT(status);
}

