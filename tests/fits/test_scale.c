/*
 * Mount-time cost: 200 sparse frames of 4096x4096 float32 (13 GiB of
 * apparent data) scan and get their views from headers only.  The proof
 * is in bytes, not seconds: this process reads (rchar in /proc/self/io)
 * only a few header blocks per frame, and the engine reads nothing.  The
 * time is reported, not asserted.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "futil.h"

#define NFR 200
#define SIDE 4096

static uint64_t rchar(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	uint64_t v = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "rchar: %llu", (unsigned long long *)&v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* A frame: one header block, then a hole as long as the data (+ padding). */
static void sparse_frame(const char *path, int i)
{
	char h[2880];
	memset(h, ' ', sizeof(h));
	const char *cards[] = {"SIMPLE  =                    T", "BITPIX  =                  -32",
			       "NAXIS   =                    2", "NAXIS1  =                 4096",
			       "NAXIS2  =                 4096", NULL};
	int n = 0;
	for (; cards[n]; n++)
		memcpy(h + 80 * n, cards[n], strlen(cards[n]));
	char c[81];
	snprintf(c, sizeof(c), "MJD-OBS =       %14.8f", 60000.0 + i * 0.0105);
	memcpy(h + 80 * n++, c, strlen(c));
	memcpy(h + 80 * n, "END", 3);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	uint64_t data = (uint64_t)SIDE * SIDE * 4, total = 2880 + (data + 2879) / 2880 * 2880;
	cr_assert_eq(ftruncate(fd, (off_t)total), 0);
	close(fd);
}

Test(scale, mount_200_frames_of_4096sq_reads_headers_only, .timeout = 200)
{
	char *dir = scratch_dir("scale");
	char p[600];
	for (int i = 0; i < NFR; i++) {
		snprintf(p, sizeof(p), "%s/night_%03d.fits", dir, NFR - 1 - i);
		sparse_frame(p, i);
	}
	struct logcap lc = {0};
	struct umapfs_engine *e = test_engine(1 << 20, 64 << 20, &lc);
	uint64_t r0 = rchar();
	double t0 = now();
	struct fp_stack *s = NULL;
	int r = scan_dir(dir, "", &lc, &s);
	cr_assert_eq(r, 0, "%s", lc.text);
	struct fp_views v;
	r = fp_views_create(s, e, 0, &v);
	cr_assert_eq(r, 0, "%s", lc.text);
	size_t il;
	char *ix = fp_index_text(s, &il);
	double t1 = now();
	uint64_t r1 = rchar();
	struct umapfs_stats st;
	umapfs_engine_stats(e, &st);

	cr_log_info("scan + views of %d x %dx%d float32 frames: %.3f s, %llu bytes read by this process, "
		    "%llu by the engine", NFR, SIDE, SIDE, t1 - t0, (unsigned long long)(r1 - r0),
		    (unsigned long long)st.bytes_read);
	fprintf(stderr, "# fits scale: %d frames of %dx%d: %.3f s, %llu bytes read (headers), engine %llu\n", NFR,
		SIDE, SIDE, t1 - t0, (unsigned long long)(r1 - r0), (unsigned long long)st.bytes_read);
	cr_assert_eq(s->n, NFR);
	cr_assert_eq(umapfs_view_size(v.native), (uint64_t)NFR * SIDE * SIDE * 4);
	cr_assert_str_eq(s->frames[0].name, "night_199.fits"); /* time order */
	/* headers only: well under 64 KiB per frame, against 64 MiB of data each */
	cr_assert_lt(r1 - r0, (uint64_t)NFR * 65536, "read %llu bytes", (unsigned long long)(r1 - r0));
	cr_assert_eq(st.bytes_read, 0);
	cr_assert_lt(t1 - t0, 60.0); /* generous: a hang, not a benchmark */

	/* a pixel of the last plane comes back (a hole reads as zeros) */
	float px = 1;
	cr_assert_eq(umapfs_view_read(v.native, &px, 4, umapfs_view_size(v.native) - 4), 4);
	cr_assert_eq(px, 0.0f);

	free(ix);
	umapfs_view_destroy(v.fits);
	umapfs_view_destroy(v.npy);
	umapfs_view_destroy(v.native);
	fp_stack_put(s);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	rm_rf(dir);
	free(dir);
}
