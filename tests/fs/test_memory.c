/*
 * buffer_size bounds what a mount costs: while a view 4x larger than the
 * buffer is scanned through mmap, the view's pages resident in the kernel
 * (mincore over the mapping: the same count fincore gives, without opening
 * the file again) plus the daemon's RSS stay within buffer_size + 64 MiB.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fsutil.h"

#define MiB (UINT64_C(1) << 20)
#define BUFFER (64 * MiB)
#define VIEW (256 * MiB)
#define SLACK (64 * MiB)

static struct tmount m;

static void setup(void)
{
	tm_init(&m, "memory");
#ifdef __SANITIZE_ADDRESS__
	/*
	 * The bound is about the daemon's own memory: keep ASan's quarantine of
	 * freed blocks (256 MiB by default) out of the daemon's RSS.
	 */
	const char *a = getenv("ASAN_OPTIONS");
	char opts[1024];
	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=4", a ? a : "", a && *a ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
#endif
}

static void teardown(void)
{
	tm_cleanup(&m);
}

TestSuite(memory, .init = setup, .fini = teardown, .timeout = 300);

static uint64_t resident(const unsigned char *map, size_t len, unsigned char *vec)
{
	cr_assert_eq(mincore((void *)map, len, vec), 0, "mincore: %s", strerror(errno));
	uint64_t n = 0;
	for (size_t i = 0; i < len / 4096; i++)
		n += vec[i] & 1;
	return n * 4096;
}

/*
 * Scan the view with 4 KiB touches (in order, or random), checking the bound;
 * in order, the pages dropped over the budget also leave the kernel in runs
 * of neighbours: on average at least `merged_pages` per invalidation; and
 * evictions drop not much more than the slack at random, about twice it at
 * most in order.
 */
static void scan(const char *opts, int random, uint64_t page_size, unsigned merged_pages)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/v", m.mnt);
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), opts), 0, "%s", tm_stderr(&m));
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	const unsigned char *map = mmap(NULL, VIEW, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(map, MAP_FAILED);
	unsigned char *vec = malloc(VIEW / 4096);
	uint64_t worst = 0, worst_k = 0, worst_r = 0, low = UINT64_MAX;
	unsigned long sum = 0;
	char stats_path[512];
	snprintf(stats_path, sizeof(stats_path), "%s/.umapfs/stats", m.mnt);
	unsigned s = 1;
	unsigned char exp[64];
	for (uint64_t i = 0; i < VIEW / 4096; i++) {
		uint64_t page = random ? (uint64_t)rand_r(&s) % (VIEW / 4096) : i;
		sum += map[page * 4096 + 100];
		if (i % 1024 == 0) {
			/* data are right, too */
			pattern_fill(exp, sizeof(exp), 11, page * 4096);
			cr_assert(memcmp(exp, map + page * 4096, sizeof(exp)) == 0, "bytes at page %llu",
				  (unsigned long long)page);
		}
		if (i % 2048 == 2047) {
			uint64_t k = resident(map, VIEW, vec), r = proc_rss(m.pid);
			if (k + r > worst) {
				worst = k + r;
				worst_k = k;
				worst_r = r;
			}
			/* once the budget has filled, evictions keep it nearly full */
			const char *live = slurp(stats_path);
			uint64_t cached = stats_get(live, "kernel_cached_bytes");
			if (stats_get(live, "kernel_invalidations") > 0 && cached < low)
				low = cached;
		}
	}
	fprintf(stderr, "%s scan (%s): worst kernel-resident %llu MiB + daemon RSS %llu MiB (bound %llu MiB), "
		"kernel cache after evictions at least %llu KiB, sum %lu\n",
		random ? "random" : "sequential", opts, (unsigned long long)(worst_k / MiB),
		(unsigned long long)(worst_r / MiB), (unsigned long long)((BUFFER + SLACK) / MiB),
		(unsigned long long)(low / 1024), sum);
	cr_expect_leq(worst, BUFFER + SLACK,
		      "kernel-resident %llu + daemon RSS %llu > buffer + 64 MiB",
		      (unsigned long long)worst_k, (unsigned long long)worst_r);
	/*
	 * An eviction drops the budget's slack (an eighth, at most 8M) and, for
	 * a scan, neighbours charged out of order: never much more, or a random
	 * reader loses pages it could have kept (a BFS ran 1.6x longer).
	 */
	uint64_t slack = BUFFER / 8 < 8 * MiB ? BUFFER / 8 : 8 * MiB;
	cr_expect_geq(low, BUFFER - slack - (random ? 16 * page_size : slack + 2 * page_size),
		      "kernel cache went down to %llu after evictions",
		      (unsigned long long)low);
	const char *st = slurp(stats_path);
	cr_expect_leq(stats_get(st, "kernel_cached_bytes"), BUFFER, "%s", st);
	uint64_t inv = stats_get(st, "kernel_invalidations");
	cr_expect_gt(inv, 0, "%s", st);
	if (merged_pages && inv)
		cr_expect_geq(stats_get(st, "kernel_invalidated_bytes") / inv, merged_pages * page_size,
			      "a sequential scan's invalidations should drop neighbours together:\n%s", st);
	free(vec);
	munmap((void *)map, VIEW);
	close(fd);
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
}

Test(memory, scan_4x_buffer_stays_bounded)
{
	cr_assert_eq(pattern_file(tm_path(&m, "big.bin"), VIEW, 11), 0);
	write_text(tm_path(&m, "desc.txt"), "view v\nbig.bin 0 rest\n");
	scan("page_size=1M,buffer_size=64M", 0, MiB, 4);
	scan("page_size=64K,buffer_size=64M", 1, 64 * 1024, 0);
}
