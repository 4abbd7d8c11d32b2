/*
 * umapfs-mknight: write a synthetic night of telescope frames (see
 * umapfs-mknight(1)).  Each frame is sky + Gaussian noise + static stars +
 * K moving point sources with a Gaussian PSF at sub-pixel positions; frames
 * carry MJD-OBS/EXPTIME with irregular spacing.  Frames are written one at a
 * time, so nights larger than memory are fine.  Everything is a function of
 * the seed.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fitsio.h>

static const char *prog = "umapfs-mknight";

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed * 0x100000001b3ULL ^ (stream + 0x632be59bd9b4e019ULL);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

static inline double rng_u01(struct rng *r)
{
	return (rng_next(r) >> 11) * 0x1.0p-53;
}

/* Two standard normal deviates (Box-Muller). */
static inline void rng_normal2(struct rng *r, double *a, double *b)
{
	double u = rng_u01(r), v = rng_u01(r);
	double m = sqrt(-2.0 * log(1.0 - u));
	*a = m * cos(2 * M_PI * v);
	*b = m * sin(2 * M_PI * v);
}

struct source {
	double x, y, vx, vy, flux;
};

/* Add a Gaussian PSF of total `flux` centred at (x, y) (pixel centres are integers). */
static void add_psf(float *img, long w, long h, double x, double y, double flux, double sigma)
{
	int r = (int)ceil(5 * sigma);
	long xi = lround(x), yi = lround(y);
	double norm = flux / (2 * M_PI * sigma * sigma), inv = 1.0 / (2 * sigma * sigma);
	for (long j = yi - r; j <= yi + r; j++) {
		if (j < 0 || j >= h)
			continue;
		double dy = j - y;
		for (long i = xi - r; i <= xi + r; i++) {
			if (i < 0 || i >= w)
				continue;
			double dx = i - x;
			img[j * w + i] += (float)(norm * exp(-(dx * dx + dy * dy) * inv));
		}
	}
}

static void mjd_to_iso(double mjd, char *buf, size_t len)
{
	long days = (long)floor(mjd);
	double frac = mjd - days;
	/* civil date (H. Hinnant's algorithm); MJD 40587 is 1970-01-01 */
	long z = days - 40587 + 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	long doe = z - era * 146097;
	long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
	long m = mp + (mp < 10 ? 3 : -9);
	if (m <= 2)
		y++;
	double secs = frac * 86400.0;
	int hh = (int)(secs / 3600);
	int mi = (int)((secs - hh * 3600) / 60);
	double ss = secs - hh * 3600 - mi * 60;
	snprintf(buf, len, "%04ld-%02ld-%02ldT%02d:%02d:%06.3f", y, m, d, hh, mi, ss);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [options] OUTDIR\n"
		"  --frames N        frames (default 24)\n"
		"  --width W --height H   frame size (default 512 x 512)\n"
		"  --movers K        moving sources (default 8)\n"
		"  --stars S         static stars (default W*H/4000)\n"
		"  --seed S          seed (default 1)\n"
		"  --sky B           sky level (default 100)\n"
		"  --noise SIGMA     Gaussian noise (default 10)\n"
		"  --psf SIGMA       PSF sigma, pixels (default 1.5)\n"
		"  --flux LIST       comma-separated mover fluxes, used in turn\n"
		"  --flux-min F --flux-max F   else log-uniform in [F1, F2] (default 300, 3000)\n"
		"  --star-max F      brightest star flux (default 5000)\n"
		"  --vmin V --vmax V mover speeds, pixels per hour (default 6, 15)\n"
		"  --exptime S       exposure, seconds (default 60)\n"
		"  --cadence S       mean start-to-start spacing, seconds (default 180)\n"
		"  --mjd0 MJD        first frame (default 60310.1)\n"
		"  --bitpix -32|16   float32, or unsigned 16-bit (BITPIX 16, BZERO 32768)\n"
		"  --bad-frac F      fraction of NaN pixels per frame (float only; default 0)\n"
		"  --margin M        movers stay M pixels inside the frame (default 8)\n"
		"  --truth FILE      truth CSV (default OUTDIR/truth.csv)\n"
		"  --quiet           no progress\n",
		prog);
}

static int getnum(const char *opt, const char *s, double *v)
{
	char *e;
	errno = 0;
	*v = strtod(s, &e);
	if (e == s || *e || errno || !isfinite(*v)) {
		fprintf(stderr, "%s: --%s: '%s' is not a number\n", prog, opt, s);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	double frames = 24, width = 512, height = 512, movers = 8, stars = -1, seed = 1, sky = 100,
	       noise = 10, psf = 1.5, fmin = 300, fmax = 3000, smax = 5000, vmin = 6, vmax = 15,
	       exptime = 60, cadence = 180, mjd0 = 60310.1, bitpix = -32, badfrac = 0, margin = 8;
	const char *fluxlist = NULL, *truth = NULL;
	int quiet = !isatty(2);
	static const struct option lo[] = {
		{"frames", 1, 0, 0}, {"width", 1, 0, 0}, {"height", 1, 0, 0}, {"movers", 1, 0, 0},
		{"stars", 1, 0, 0}, {"seed", 1, 0, 0}, {"sky", 1, 0, 0}, {"noise", 1, 0, 0},
		{"psf", 1, 0, 0}, {"flux-min", 1, 0, 0}, {"flux-max", 1, 0, 0}, {"star-max", 1, 0, 0},
		{"vmin", 1, 0, 0}, {"vmax", 1, 0, 0}, {"exptime", 1, 0, 0}, {"cadence", 1, 0, 0},
		{"mjd0", 1, 0, 0}, {"bitpix", 1, 0, 0}, {"bad-frac", 1, 0, 0}, {"margin", 1, 0, 0},
		{"flux", 1, 0, 0}, {"truth", 1, 0, 0}, {"quiet", 0, 0, 0}, {"help", 0, 0, 0},
		{0, 0, 0, 0}};
	double *dst[] = {&frames, &width, &height, &movers, &stars, &seed, &sky, &noise, &psf,
			 &fmin, &fmax, &smax, &vmin, &vmax, &exptime, &cadence, &mjd0, &bitpix,
			 &badfrac, &margin};
	int ch, li;
	while ((ch = getopt_long(argc, argv, "h", lo, &li)) != -1) {
		if (ch == 'h') {
			usage(stdout);
			return 0;
		}
		if (ch != 0) {
			usage(stderr);
			return 2;
		}
		if (li < (int)(sizeof(dst) / sizeof(dst[0]))) {
			if (getnum(lo[li].name, optarg, dst[li]))
				return 2;
		} else if (!strcmp(lo[li].name, "flux"))
			fluxlist = optarg;
		else if (!strcmp(lo[li].name, "truth"))
			truth = optarg;
		else if (!strcmp(lo[li].name, "quiet"))
			quiet = 1;
		else {
			usage(stdout);
			return 0;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	const char *out = argv[optind];
	if (frames < 1 || frames > 100000 || width < 8 || height < 8 || width > 65536 ||
	    height > 65536 || movers < 0 || movers > 100000 || noise < 0 || psf <= 0 ||
	    fmin <= 0 || fmax < fmin || vmin < 0 || vmax < vmin || exptime <= 0 ||
	    cadence < exptime || (bitpix != -32 && bitpix != 16) || badfrac < 0 || badfrac > 0.5 ||
	    margin < 0 || stars > 1e7) {
		fprintf(stderr, "%s: an option is out of range (see --help)\n", prog);
		return 2;
	}
	long n = (long)frames, w = (long)width, h = (long)height, nm = (long)movers;
	long ns = stars >= 0 ? (long)stars : w * h / 4000;
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s", out);
	for (char *p = parent + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(parent, 0755); /* like mkdir -p; the last mkdir reports */
			*p = '/';
		}
	if (mkdir(out, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "%s: %s: %s\n", prog, out, strerror(errno));
		return 1;
	}
	double *fl = NULL;
	long nfl = 0;
	if (fluxlist) {
		fl = malloc((strlen(fluxlist) + 1) * sizeof(double));
		const char *s = fluxlist;
		while (fl && *s) {
			char *e;
			double v = strtod(s, &e);
			if (e == s || v <= 0 || !isfinite(v)) {
				fprintf(stderr, "%s: --flux: bad list '%s'\n", prog, fluxlist);
				return 2;
			}
			fl[nfl++] = v;
			s = *e == ',' ? e + 1 : e;
			if (*e && *e != ',') {
				fprintf(stderr, "%s: --flux: bad list '%s'\n", prog, fluxlist);
				return 2;
			}
		}
	}

	/* times: start-to-start spacing jittered around the cadence, with occasional pauses */
	double *mjd = malloc(n * sizeof(double));
	struct source *mv = malloc((nm ? nm : 1) * sizeof(*mv));
	struct source *st = malloc((ns ? ns : 1) * sizeof(*st));
	float *img = malloc((size_t)w * h * sizeof(float));
	if (!mjd || !mv || !st || !img) {
		fprintf(stderr, "%s: out of memory for a %ldx%ld frame\n", prog, w, h);
		return 1;
	}
	struct rng r;
	rng_seed(&r, (uint64_t)seed, 0);
	mjd[0] = mjd0;
	for (long k = 1; k < n; k++) {
		double gap = exptime + (cadence - exptime) * (0.4 + 1.2 * rng_u01(&r));
		if (rng_u01(&r) < 0.1)
			gap += 2 * cadence; /* a pause: clouds, a calibration */
		mjd[k] = mjd[k - 1] + gap / 86400.0;
	}
	double span = 24.0 * (mjd[n - 1] - mjd[0]);

	rng_seed(&r, (uint64_t)seed, 1);
	for (long i = 0; i < nm; i++) {
		double sp = vmin + (vmax - vmin) * rng_u01(&r), th = 2 * M_PI * rng_u01(&r);
		mv[i].vx = sp * cos(th);
		mv[i].vy = sp * sin(th);
		double ex = fabs(mv[i].vx) * span, ey = fabs(mv[i].vy) * span;
		double xlo = margin + (mv[i].vx < 0 ? ex : 0), xhi = w - 1 - margin - (mv[i].vx > 0 ? ex : 0);
		double ylo = margin + (mv[i].vy < 0 ? ey : 0), yhi = h - 1 - margin - (mv[i].vy > 0 ? ey : 0);
		if (xhi < xlo || yhi < ylo) {
			fprintf(stderr, "%s: frames too small for movers this fast over %.2f h\n", prog, span);
			return 2;
		}
		mv[i].x = xlo + (xhi - xlo) * rng_u01(&r);
		mv[i].y = ylo + (yhi - ylo) * rng_u01(&r);
		mv[i].flux = nfl ? fl[i % nfl] : fmin * pow(fmax / fmin, rng_u01(&r));
	}
	rng_seed(&r, (uint64_t)seed, 2);
	for (long i = 0; i < ns; i++) {
		st[i].x = rng_u01(&r) * (w - 1);
		st[i].y = rng_u01(&r) * (h - 1);
		/* power law N(>F) ~ F^-1.5 from 200 up to star-max */
		double f = 200 * pow(1 - rng_u01(&r), -1 / 1.5);
		st[i].flux = f < smax ? f : smax;
	}

	char tpath[4096];
	if (!truth) {
		snprintf(tpath, sizeof(tpath), "%s/truth.csv", out);
		truth = tpath;
	}
	FILE *tf = fopen(truth, "w");
	if (!tf) {
		fprintf(stderr, "%s: %s: %s\n", prog, truth, strerror(errno));
		return 1;
	}
	fprintf(tf, "# umapfs-mknight truth: %ld frames %ldx%ld, seed %.0f; positions at t0 = MJD %.9f"
		    " (frame 0), pixels from 0; velocities in pixels per hour; flux = PSF total\n",
		n, w, h, seed, mjd[0]);
	fprintf(tf, "id,x0,y0,vx,vy,flux\n");
	for (long i = 0; i < nm; i++)
		fprintf(tf, "%ld,%.4f,%.4f,%.5f,%.5f,%.2f\n", i, mv[i].x, mv[i].y, mv[i].vx, mv[i].vy,
			mv[i].flux);
	if (fclose(tf) != 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, truth, strerror(errno));
		return 1;
	}

	for (long k = 0; k < n; k++) {
		struct rng nr;
		rng_seed(&nr, (uint64_t)seed, 1000 + (uint64_t)k);
		size_t npx = (size_t)w * h;
		for (size_t i = 0; i + 1 < npx; i += 2) {
			double a, b;
			rng_normal2(&nr, &a, &b);
			img[i] = (float)(sky + noise * a);
			img[i + 1] = (float)(sky + noise * b);
		}
		if (npx & 1) {
			double a, b;
			rng_normal2(&nr, &a, &b);
			img[npx - 1] = (float)(sky + noise * a);
		}
		for (long i = 0; i < ns; i++)
			add_psf(img, w, h, st[i].x, st[i].y, st[i].flux, psf);
		double dt = 24.0 * (mjd[k] - mjd[0]);
		for (long i = 0; i < nm; i++)
			add_psf(img, w, h, mv[i].x + mv[i].vx * dt, mv[i].y + mv[i].vy * dt, mv[i].flux, psf);
		if (bitpix == 16) {
			for (size_t i = 0; i < npx; i++) {
				float v = rintf(img[i]);
				img[i] = v < 0 ? 0 : v > 65535 ? 65535 : v;
			}
		} else if (badfrac > 0) {
			size_t nb = (size_t)(badfrac * npx);
			for (size_t i = 0; i < nb; i++)
				img[rng_next(&nr) % npx] = NAN;
		}

		char path[4200], date[128];
		snprintf(path, sizeof(path), "!%s/frame-%04ld.fits", out, k);
		fitsfile *f = NULL;
		int status = 0;
		long naxes[2] = {w, h};
		double mk = mjd[k], et = exptime;
		mjd_to_iso(mjd[k], date, sizeof(date));
		fits_create_file(&f, path, &status);
		fits_create_img(f, bitpix == 16 ? USHORT_IMG : FLOAT_IMG, 2, naxes, &status);
		fits_write_key(f, TDOUBLE, "MJD-OBS", &mk, "start of exposure (MJD)", &status);
		fits_write_key(f, TSTRING, "DATE-OBS", date, "start of exposure (UTC)", &status);
		fits_write_key(f, TDOUBLE, "EXPTIME", &et, "exposure time (s)", &status);
		fits_write_key(f, TSTRING, "OBJECT", "umapfs synthetic night", NULL, &status);
		fits_write_key(f, TSTRING, "BUNIT", "count", NULL, &status);
		fits_write_img(f, TFLOAT, 1, (LONGLONG)npx, img, &status);
		fits_close_file(f, &status);
		if (status) {
			char msg[FLEN_STATUS];
			fits_get_errstatus(status, msg);
			fprintf(stderr, "%s: %s: %s\n", prog, path + 1, msg);
			return 1;
		}
		if (!quiet) {
			fprintf(stderr, "\r%s: frame %ld/%ld", prog, k + 1, n);
			fflush(stderr);
		}
	}
	if (!quiet)
		fputc('\n', stderr);
	printf("%s: %ld frames of %ldx%ld (%s) over %.3f h, %ld movers, %ld stars in %s; truth in %s\n",
	       prog, n, w, h, bitpix == 16 ? "uint16" : "float32", span, nm, ns, out, truth);
	free(mjd);
	free(mv);
	free(st);
	free(img);
	free(fl);
	return 0;
}
