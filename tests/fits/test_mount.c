/*
 * The fits plugin through real FUSE mounts of the daemon: read() and mmap
 * of every view equal the views the library builds (themselves checked
 * against cfitsio in test_views.c) and cfitsio's reading of the sources;
 * refused mounts say why; real tools read the mounted cube (tools.sh).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fitsio.h>

#include "fsutil.h"
#include "futil.h"

#define NX 300
#define NY 257

static void frames(struct tmount *m, struct fspec sp, int n, const char *ext)
{
	char d[400];
	snprintf(d, sizeof(d), "%s/frames", m->dir);
	mkdir(d, 0755);
	for (int i = 0; i < n; i++) {
		char p[512];
		snprintf(p, sizeof(p), "%s/frame_%02d.%s", d, i, ext);
		struct fspec f = sp;
		f.seed = (unsigned)i + 3;
		f.mjd = 60100 + 0.01 * ((i * 7) % n); /* time order != name order */
		make_frame(p, &f);
	}
}

static void *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	struct stat sb;
	fstat(fd, &sb);
	char *b = malloc((size_t)sb.st_size + 1);
	size_t got = 0;
	while (got < (size_t)sb.st_size) {
		ssize_t r = pread(fd, b + got, (size_t)sb.st_size - got > 100000 ? 100000 : (size_t)sb.st_size - got,
				  (off_t)got);
		cr_assert(r > 0, "read %s at %zu: %zd", path, got, r);
		got += (size_t)r;
	}
	close(fd);
	b[got] = 0;
	*len = got;
	return b;
}

/* read() and mmap of mounted NAME equal the library's view bytes. */
static void same_bytes(struct tmount *m, const char *name, struct umapfs_view *lib)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/%s", m->mnt, name);
	size_t len;
	unsigned char *rd = read_all(p, &len), *want = view_slurp(lib);
	cr_assert_eq(len, umapfs_view_size(lib), "%s: %zu bytes, library view %llu", name, len,
		     (unsigned long long)umapfs_view_size(lib));
	cr_assert(memcmp(rd, want, len) == 0, "%s: read() differs from the library view", name);
	int fd = open(p, O_RDONLY);
	unsigned char *mp = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert(mp != MAP_FAILED, "mmap %s: %s", name, strerror(errno));
	cr_assert(memcmp(mp, want, len) == 0, "%s: mmap differs from the library view", name);
	/* random sub-ranges through mmap, after the kernel may have dropped pages */
	srand(5);
	for (int i = 0; i < 100; i++) {
		size_t off = (size_t)rand() % len, n = (size_t)rand() % 50000 + 1;
		if (n > len - off)
			n = len - off;
		cr_assert(memcmp(mp + off, want + off, n) == 0, "%s: mmap range %zu+%zu differs", name, off, n);
	}
	munmap(mp, len);
	close(fd);
	free(rd);
	free(want);
}

/* Mount FRAMES with opts and compare every view with the library's. */
static void mount_and_compare(struct tmount *m, const char *opts, const char *lib_opts, int hdu, int bitpix)
{
	char src[400];
	snprintf(src, sizeof(src), "%s/frames", m->dir);
	cr_assert_eq(tm_start(m, src, opts), 0, "mount failed:\n%s", tm_stderr(m));

	struct logcap lc = {0};
	struct fp_stack *s;
	cr_assert_eq(scan_dir(src, lib_opts, &lc, &s), 0, "%s", lc.text);
	struct umapfs_engine *e = test_engine(65536, 8 << 20, &lc);
	struct fp_views v;
	cr_assert_eq(fp_views_create(s, e, 0, &v), 0, "%s", lc.text);
	same_bytes(m, "cube.fits", v.fits);
	same_bytes(m, "cube.npy", v.npy);
	same_bytes(m, fp_native_name(s), v.native);

	/* the native view through mmap, plane by plane, against cfitsio on the sources */
	char p[600];
	snprintf(p, sizeof(p), "%s/%s", m->mnt, fp_native_name(s));
	int fd = open(p, O_RDONLY);
	size_t npix = (size_t)NX * NY, esz = bitpix == -64 ? 8 : 4;
	void *mp = mmap(NULL, s->n * npix * esz, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert(mp != MAP_FAILED);
	for (size_t k = 0; k < s->n; k++) {
		void *ref = ref_physical(s->frames[k].path, hdu, bitpix, NX, NY);
		long long d = esz == 8 ? cmp_double((double *)mp + k * npix, ref, npix)
				       : cmp_float((float *)mp + k * npix, ref, npix);
		cr_assert_eq(d, -1, "mounted %s plane %zu pixel %lld differs from cfitsio", fp_native_name(s), k, d);
		free(ref);
	}
	munmap(mp, s->n * npix * esz);
	close(fd);

	size_t il, ml;
	char *ix = fp_index_text(s, &il);
	snprintf(p, sizeof(p), "%s/index.txt", m->mnt);
	char *mx = read_all(p, &ml);
	cr_assert_str_eq(mx, ix);
	free(ix);
	free(mx);
	umapfs_view_destroy(v.fits);
	umapfs_view_destroy(v.npy);
	umapfs_view_destroy(v.native);
	fp_stack_put(s);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
}

static void cleanup(struct tmount *m)
{
	int st = tm_stop(m);
	static char err[16384];
	snprintf(err, sizeof(err), "%s", tm_stderr(m));
	tm_cleanup(m);
	cr_assert_eq(st, 0, "daemon exit status %d; its stderr:\n%s", st, err);
}

Test(mount, f32_read_and_mmap, .timeout = 120)
{
	struct tmount m;
	tm_init(&m, "fits-f32");
	struct fspec sp = fspec_default(-32, NX, NY);
	sp.wcs = 1;
	frames(&m, sp, 5, "fits");
	mount_and_compare(&m, "plugin=fits,page_size=64K,buffer_size=2M", "", 1, -32);
	cleanup(&m);
}

Test(mount, u16_ext_writable_rules, .timeout = 120)
{
	struct tmount m;
	tm_init(&m, "fits-u16");
	struct fspec sp = fspec_default(16, NX, NY);
	sp.bzero_set = 1, sp.bzero = 32768, sp.in_ext = 1;
	frames(&m, sp, 4, "fits");
	mount_and_compare(&m, "plugin=fits,hdu=SCI,writable,page_size=16K", "hdu=SCI", 2, 16);
	char p[600];
	snprintf(p, sizeof(p), "%s/cube.f32", m.mnt);
	errno = 0;
	cr_assert_eq(open(p, O_RDWR), -1);
	cr_assert_eq(errno, EACCES, "%s", strerror(errno));
	cr_assert(strstr(tm_stderr(&m), "cube.f32 is read-only: the sources are integers"), "%s", tm_stderr(&m));
	snprintf(p, sizeof(p), "%s/cube.npy", m.mnt);
	int fd = open(p, O_RDWR);
	cr_assert(fd >= 0, "%s", strerror(errno));
	close(fd);
	cleanup(&m);
}

Test(mount, f64_compressed_and_order, .timeout = 120)
{
	struct tmount m;
	tm_init(&m, "fits-fz");
	struct fspec sp = fspec_default(-32, NX, NY);
	sp.comp = RICE_1;
	frames(&m, sp, 3, "fz");
	mount_and_compare(&m, "plugin=fits,page_size=16K,buffer_size=1M", "", 2, -32);
	cleanup(&m);
	tm_init(&m, "fits-f64");
	frames(&m, fspec_default(-64, NX, NY), 3, "fits");
	mount_and_compare(&m, "plugin=fits,order=name", "order=name", 1, -64);
	cleanup(&m);
}

Test(mount, refused_with_reason, .timeout = 60)
{
	struct tmount m;
	tm_init(&m, "fits-bad");
	frames(&m, fspec_default(-32, 40, 30), 2, "fits");
	char p[600];
	snprintf(p, sizeof(p), "%s/frames/frame_99.fits", m.dir);
	struct fspec s = fspec_default(-32, 41, 30);
	make_frame(p, &s);
	char src[400];
	snprintf(src, sizeof(src), "%s/frames", m.dir);
	int st = tm_run_fail(&m, src, "plugin=fits");
	cr_assert_neq(st, 0);
	cr_assert(strstr(tm_stderr(&m), "frame_99.fits: NAXIS1 = 41 but frame_00.fits has NAXIS1 = 40"), "%s",
		  tm_stderr(&m));
	cr_assert_neq(tm_run_fail(&m, src, "plugin=fits,colour=red"), 0);
	cr_assert(strstr(tm_stderr(&m), "unknown option 'colour'"), "%s", tm_stderr(&m));
	/* on_error=skip mounts the good ones and lists the bad one */
	cr_assert_eq(tm_start(&m, src, "plugin=fits,on_error=skip"), 0, "%s", tm_stderr(&m));
	snprintf(p, sizeof(p), "%s/index.txt", m.mnt);
	size_t l;
	char *ix = read_all(p, &l);
	cr_assert(strstr(ix, "skipped\tframe_99.fits\tNAXIS1 = 41"), "%s", ix);
	free(ix);
	cleanup(&m);
}

/* The real tools: fitsverify, astropy, numpy, imcopy, ds9 (tools.sh). */
static void tools(const char *tag, struct fspec sp, int n, const char *flags)
{
	struct tmount m;
	tm_init(&m, tag);
	frames(&m, sp, n, "fits");
	char src[400];
	snprintf(src, sizeof(src), "%s/frames", m.dir);
	cr_assert_eq(tm_start(&m, src, "plugin=fits,page_size=64K,buffer_size=4M"), 0, "%s", tm_stderr(&m));
	const char *root = getenv("UMAPFS_SOURCE_ROOT");
	char out[600];
	snprintf(out, sizeof(out), "%s/tools.out", m.dir);
	int r = sh("'%s/tests/fits/tools.sh' '%s' '%s' %s >'%s' 2>&1", root ? root : ".", m.mnt, src, flags, out);
	size_t l;
	char *txt = read_all(out, &l);
	cr_log_info("%s", txt);
	cr_assert_eq(r, 0, "tools.sh failed (%d):\n%s", r, txt);
	cr_assert(strstr(txt, "tools: all OK"), "%s", txt);
	free(txt);
	cleanup(&m);
}

Test(tools, unscaled_f32_with_wcs, .timeout = 300)
{
	struct fspec sp = fspec_default(-32, 200, 150);
	sp.wcs = 1;
	tools("fits-tools", sp, 6, "ds9");
}

Test(tools, scaled_u16, .timeout = 200)
{
	struct fspec sp = fspec_default(16, 200, 150);
	sp.bzero_set = 1, sp.bzero = 32768;
	tools("fits-tools16", sp, 4, "scaled");
}

Test(mount, writable_float_mmap_msync, .timeout = 120)
{
	struct tmount m;
	tm_init(&m, "fits-wr");
	frames(&m, fspec_default(-32, NX, NY), 3, "fits");
	char src[400], p[600];
	snprintf(src, sizeof(src), "%s/frames", m.dir);
	cr_assert_eq(tm_start(&m, src, "plugin=fits,writable,page_size=16K,order=name"), 0, "%s", tm_stderr(&m));
	size_t npix = (size_t)NX * NY;

	/* the native view through a shared writable mapping */
	snprintf(p, sizeof(p), "%s/cube.f32", m.mnt);
	int fd = open(p, O_RDWR);
	cr_assert(fd >= 0, "open cube.f32 rw: %s", strerror(errno));
	float *c = mmap(NULL, 3 * npix * 4, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert(c != MAP_FAILED, "%s", strerror(errno));
	c[1 * npix + 100 * NX + 7] = 4242.5f;
	c[2 * npix + npix - 1] = -1.0f / 3;
	cr_assert_eq(msync(c, 3 * npix * 4, MS_SYNC), 0, "%s", strerror(errno));
	munmap(c, 3 * npix * 4);
	close(fd);
	snprintf(p, sizeof(p), "%s/frames/frame_01.fits", m.dir);
	float *f1 = ref_physical(p, 1, -32, NX, NY);
	cr_assert_eq(f1[100 * NX + 7], 4242.5f);
	free(f1);
	snprintf(p, sizeof(p), "%s/frames/frame_02.fits", m.dir);
	float *f2 = ref_physical(p, 1, -32, NX, NY);
	cr_assert_eq(f2[npix - 1], -1.0f / 3);
	free(f2);

	/* cube.fits data through write(2) + fsync: big-endian bytes land in frame 0 */
	snprintf(p, sizeof(p), "%s/cube.fits", m.mnt);
	fd = open(p, O_RDWR);
	cr_assert(fd >= 0, "open cube.fits rw: %s", strerror(errno));
	float w = 2.75f;
	uint32_t u;
	memcpy(&u, &w, 4);
	u = __builtin_bswap32(u);
	cr_assert_eq(pwrite(fd, &u, 4, FP_HDR_UNIT + 4 * 5), 4);
	cr_assert_eq(fsync(fd), 0, "%s", strerror(errno));
	close(fd);
	snprintf(p, sizeof(p), "%s/frames/frame_00.fits", m.dir);
	float *f0 = ref_physical(p, 1, -32, NX, NY);
	cr_assert_eq(f0[5], 2.75f);
	free(f0);
	cleanup(&m);
}

/* 200 sparse 4096^2 float32 frames: the daemon mounts them from headers. */
Test(mount, two_hundred_big_frames, .timeout = 200)
{
	struct tmount m;
	tm_init(&m, "fits-200");
	char d[400], p[600];
	snprintf(d, sizeof(d), "%s/frames", m.dir);
	mkdir(d, 0755);
	for (int i = 0; i < 200; i++) {
		snprintf(p, sizeof(p), "%s/f%03d.fits", d, i);
		char h[2880];
		memset(h, ' ', sizeof(h));
		const char *cards[] = {"SIMPLE  =                    T", "BITPIX  =                  -32",
				       "NAXIS   =                    2", "NAXIS1  =                 4096",
				       "NAXIS2  =                 4096", "END", NULL};
		for (int n = 0; cards[n]; n++)
			memcpy(h + 80 * n, cards[n], strlen(cards[n]));
		int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);
		cr_assert(fd >= 0);
		cr_assert_eq(write(fd, h, sizeof(h)), 2880);
		cr_assert_eq(ftruncate(fd, 2880 + (off_t)4096 * 4096 * 4), 0);
		close(fd);
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(tm_start(&m, d, "plugin=fits,order=name"), 0, "%s", tm_stderr(&m));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double dt = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "# fits: daemon mounted 200 x 4096x4096 float32 frames in %.3f s (start to mount)\n", dt);
	cr_log_info("daemon mounted 200 x 4096^2 float32 frames in %.3f s", dt);
	struct stat sb;
	snprintf(p, sizeof(p), "%s/cube.f32", m.mnt);
	cr_assert_eq(stat(p, &sb), 0);
	cr_assert_eq((uint64_t)sb.st_size, (uint64_t)200 * 4096 * 4096 * 4);
	snprintf(p, sizeof(p), "%s/cube.fits", m.mnt);
	cr_assert_eq(stat(p, &sb), 0);
	cr_assert_eq((uint64_t)sb.st_size % 2880, 0);
	cleanup(&m);
}
