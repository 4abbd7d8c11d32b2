/*
 * Suite 'examples': the sweep through a real umapfs mount of a night of frames
 * (the built daemon and FITS plugin).  The mounted native view (cube.f32) and
 * cube.fits read by its header must give the same medians as per-pixel
 * cfitsio reads of the frames, the planted movers must be recovered through
 * the mount, and the CLI on the mount must print the same candidates as on the
 * pre-stitched file.  The buffers hold the cube: with a buffer smaller than
 * the cube the engine (2026-11-29) can deadlock between the native view's
 * fill and the raw pages it pins (budget_reserve vs wait_inflight); that is
 * reported, not papered over here.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fitsio.h>

#include "sweep.h"

static char build[2048];

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

struct mnt {
	char dir[256], mnt[300], frames[300];
	pid_t pid;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Start the daemon in the foreground on dir/frames at dir/mnt. */
static void mount_night(struct mnt *m, const char *opts)
{
	snprintf(m->mnt, sizeof(m->mnt), "%s/mnt", m->dir);
	snprintf(m->frames, sizeof(m->frames), "%s/frames", m->dir);
	mkdir(m->mnt, 0755);
	char daemon[2200], plugins[2200], errf[320];
	snprintf(daemon, sizeof(daemon), "%s/fs/umapfs", build);
	snprintf(plugins, sizeof(plugins), "%s/plugins/fits", build);
	snprintf(errf, sizeof(errf), "%s/daemon.err", m->dir);
	cr_assert(access(daemon, X_OK) == 0, "no daemon at %s", daemon);
	m->pid = fork();
	cr_assert_geq(m->pid, 0);
	if (m->pid == 0) {
		FILE *e = freopen(errf, "w", stderr);
		(void)e;
		setenv("UMAPFS_PLUGIN_PATH", plugins, 1);
		/* the daemon is not under test for leaks here (suite fs does that) */
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		execl(daemon, "umapfs", "-f", "-o", opts, m->frames, m->mnt, (char *)NULL);
		_exit(127);
	}
	char cube[400];
	snprintf(cube, sizeof(cube), "%s/cube.f32", m->mnt);
	for (int i = 0; i < 300; i++) {
		if (access(cube, R_OK) == 0)
			return;
		int st;
		if (waitpid(m->pid, &st, WNOHANG) == m->pid) {
			m->pid = -1;
			run("cat %s >&2", errf);
			cr_assert_fail("the daemon exited before mounting (see above)");
		}
		sleep_ms(100);
	}
	cr_assert_fail("%s did not appear within 30 s", cube);
}

static void unmount_night(struct mnt *m)
{
	if (m->pid <= 0)
		return;
	run("fusermount3 -u %s 2>/dev/null || umount %s", m->mnt, m->mnt);
	for (int i = 0; i < 100; i++) {
		int st;
		if (waitpid(m->pid, &st, WNOHANG) == m->pid) {
			m->pid = -1;
			cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exit status %d", st);
			return;
		}
		sleep_ms(100);
	}
	kill(m->pid, SIGKILL);
	waitpid(m->pid, NULL, 0);
	m->pid = -1;
	cr_assert_fail("the daemon did not exit after unmount");
}

static struct mnt *cur;

static void setup(void)
{
	const char *b = getenv("UMAPFS_BUILD_ROOT");
	cr_assert(b, "UMAPFS_BUILD_ROOT is not set (run through meson test)");
	snprintf(build, sizeof(build), "%s", b);
}

static void teardown(void)
{
	if (cur && cur->pid > 0) {
		run("fusermount3 -u %s 2>/dev/null || umount -l %s 2>/dev/null", cur->mnt, cur->mnt);
		kill(cur->pid, SIGTERM);
		waitpid(cur->pid, NULL, 0);
	}
	if (cur) {
		run("rm -rf '%s'", cur->dir);
		free(cur);
		cur = NULL;
	}
}

static struct mnt *night(const char *tag, const char *mknight_args)
{
	struct mnt *m = calloc(1, sizeof(*m));
	cur = m;
	snprintf(m->dir, sizeof(m->dir), "/var/tmp/umapfs-examples-%s-XXXXXX", tag);
	cr_assert(mkdtemp(m->dir));
	cr_assert_eq(run("%s/examples/umapfs-mknight --quiet %s %s/frames >/dev/null", build,
			 mknight_args, m->dir),
		     0);
	return m;
}

/* Reference: per-pixel fits_read_pix from the frames, samples sorted. */
static int fcmp(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

static void check_medians(struct sweep_cube *c, const char *frames, int npaths, uint64_t seed)
{
	long n = c->n;
	fitsfile **f = calloc(n, sizeof(*f));
	double *mjd = calloc(n, sizeof(double));
	for (long k = 0; k < n; k++) {
		char p[600];
		int status = 0;
		snprintf(p, sizeof(p), "%s/frame-%04ld.fits", frames, k); /* mknight: names in time order */
		cr_assert_eq(fits_open_diskfile(&f[k], p, READONLY, &status), 0, "%s", p);
		cr_assert_eq(fits_read_key_dbl(f[k], "MJD-OBS", &mjd[k], NULL, &status), 0);
	}
	struct sweep_cand *p = calloc(npaths, sizeof(*p));
	for (int i = 0; i < npaths; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		p[i].x0 = (int32_t)((seed >> 33) % c->w);
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		p[i].y0 = (int32_t)((seed >> 33) % c->h);
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		p[i].vx = (float)((double)((seed >> 33) % 3001) / 100.0 - 15.0);
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		p[i].vy = (float)((double)((seed >> 33) % 3001) / 100.0 - 15.0);
	}
	char err[1024];
	cr_assert_eq(sweep_eval_paths(c, p, npaths, 2, err, sizeof(err)), 0, "%s", err);
	float *v = malloc(n * sizeof(float));
	for (int i = 0; i < npaths; i++) {
		int m = 0;
		for (long k = 0; k < n; k++) {
			double dt = 24.0 * (mjd[k] - mjd[0]);
			long x = p[i].x0 + (long)floor((double)p[i].vx * dt + 0.5);
			long y = p[i].y0 + (long)floor((double)p[i].vy * dt + 0.5);
			if (x < 0 || y < 0 || x >= c->w || y >= c->h)
				continue;
			long fp[2] = {x + 1, y + 1};
			float s, nan = NAN;
			int status = 0, any;
			cr_assert_eq(fits_read_pix(f[k], TFLOAT, fp, 1, &nan, &s, &any, &status), 0);
			if (!isnan(s))
				v[m++] = s;
		}
		cr_assert_eq(p[i].count, m, "path %d: count %d, reference %d", i, p[i].count, m);
		if (!m)
			continue;
		qsort(v, m, sizeof(float), fcmp);
		double med = m & 1 ? v[m / 2] : ((double)v[m / 2 - 1] + (double)v[m / 2]) / 2;
		cr_assert(p[i].median == med, "path %d (%d,%d,%g,%g): median %.17g, reference %.17g", i,
			  p[i].x0, p[i].y0, p[i].vx, p[i].vy, p[i].median, med);
	}
	for (long k = 0; k < n; k++) {
		int status = 0;
		fits_close_file(f[k], &status);
	}
	free(v);
	free(p);
	free(f);
	free(mjd);
}

Test(mount, medians_through_the_mount_equal_cfitsio_reads, .init = setup, .fini = teardown,
     .timeout = 240)
{
	/* 24 frames of 256x192 (4.5 MiB), 64 KiB pages */
	struct mnt *m = night("mnt", "--frames 24 --width 256 --height 192 --movers 4 --bad-frac 0.002 "
				     "--seed 31");
	mount_night(m, "plugin=fits,page_size=64K,buffer_size=16M");
	char path[600], err[1024];
	struct sweep_cube c;
	snprintf(path, sizeof(path), "%s/cube.f32", m->mnt);
	cr_assert_eq(sweep_cube_open(&c, path, -1, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.n, 24);
	cr_assert_eq(c.w, 256);
	cr_assert_eq(c.h, 192);
	check_medians(&c, m->frames, 3000, 5);
	sweep_cube_close(&c);
	/* cube.fits by its header (big-endian float32, PMJDnnnn plane times) */
	snprintf(path, sizeof(path), "%s/cube.fits", m->mnt);
	cr_assert_eq(sweep_cube_open(&c, path, -1, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.type, SWEEP_T_BE_F32);
	check_medians(&c, m->frames, 1000, 6);
	sweep_cube_close(&c);
	unmount_night(m);
}

/*
 * The sweep with `args` over a pre-stitched native file of the night (kernel
 * mmap) gives the candidates the mount gave (m->dir/mount.csv).
 */
static void same_candidates_as_stitched(const struct mnt *m, const char *args)
{
	cr_assert_eq(run("%s/examples/umapfs-stitch %s %s/stitched >/dev/null", build, m->frames, m->dir),
		     0);
	cr_assert_eq(run("%s/examples/umapfs-sweep %s --output %s/file.csv %s/stitched/cube.f32", build,
			 args, m->dir, m->dir),
		     0);
	cr_assert_eq(run("cmp %s/mount.csv %s/file.csv", m->dir, m->dir), 0,
		     "the mount and the stitched file give different candidates");
}

Test(mount, sweep_cli_through_the_mount_recovers_movers, .init = setup, .fini = teardown,
     .timeout = 240)
{
	struct mnt *m = night("mntcli", "--frames 24 --width 256 --height 256 --movers 6 "
					"--flux 800,1200,1600,2000,2500,3000 --seed 17");
	mount_night(m, "plugin=fits,page_size=256K,buffer_size=16M");
	const char *args = "--quiet --no-progress --exhaustive --vmin 4 --vmax 16 --top 8";
	cr_assert_eq(run("timeout 120 %s/examples/umapfs-sweep %s --truth %s/truth.csv --output %s/mount.csv "
			 "%s/cube.f32 > %s/report.txt",
			 build, args, m->frames, m->dir, m->mnt, m->dir),
		     0);
	cr_assert_eq(run("grep -q 'recovered 6 of 6 movers' %s/report.txt", m->dir), 0,
		     "not every mover recovered through the mount (see %s/report.txt)", m->dir);
	same_candidates_as_stitched(m, args);
	unmount_night(m);
}

/* A key's value in the mount's stats file, or -1. */
static long long stat_value(const struct mnt *m, const char *key)
{
	char p[400], line[256];
	snprintf(p, sizeof(p), "%s/.umapfs/stats", m->mnt);
	FILE *f = fopen(p, "r");
	cr_assert(f, "%s: %s", p, strerror(errno));
	long long v = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
			v = atoll(line + kl + 1);
	fclose(f);
	return v;
}

Test(mount, cube_four_times_the_buffer_is_read_about_once, .init = setup, .fini = teardown,
     .timeout = 240)
{
	/* 32 frames of 512x512 float32: 32 MiB through an 8 MiB buffer of 16 KiB pages */
	struct mnt *m = night("mntbig", "--frames 32 --width 512 --height 512 --movers 4 --seed 23");
	mount_night(m, "plugin=fits,page_size=16K,buffer_size=8M");
	const char *args = "--quiet --no-progress --raw --no-refine --random 20000 --seed 3 --top 10";
	cr_assert_eq(run("timeout 120 %s/examples/umapfs-sweep %s --output %s/mount.csv %s/cube.f32 "
			 "2> %s/sweep.err",
			 build, args, m->dir, m->mnt, m->dir),
		     0);
	/* the sweep read the buffer size from the mount and found the band fits */
	cr_assert_eq(run("grep -q 'do not fit' %s/sweep.err", m->dir), 1,
		     "the sweep says the band does not fit (see %s/sweep.err)", m->dir);
	long long fills = stat_value(m, "fills"), ps = stat_value(m, "page_size");
	long long cube = 32LL << 20;
	cr_assert_eq(ps, 16384);
	cr_assert(fills >= cube / ps, "fills %lld: fewer than the cube's pages", fills);
	cr_assert(fills * ps <= cube + cube / 2,
		  "%lld fills of %lld bytes for a %lld-byte cube: re-read more than half of it", fills, ps,
		  cube);
	cr_assert(stat_value(m, "ioctl_prefetches") > 0, "the sweep sent no prefetch request");
	same_candidates_as_stitched(m, args);
	unmount_night(m);
}
