/*
 * Views through a real mount: bytes equal their extents via read() and via
 * mmap from several threads; page and buffer sizes show in the stats;
 * read-only mounts refuse writes; writable mounts reach the backing files.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fsutil.h"
#include "umapfs/ioctl.h"

#define A_SIZE ((3u << 20) + 123)
#define B_SIZE (5u << 20)
#define C_SIZE (1u << 20)

static struct tmount m;
static unsigned char *v1, *v2; /* expected view contents */
static size_t v1_size, v2_size;

/* Three files and a description with every kind of extent line. */
static void make_views(void)
{
	tm_init(&m, "views");
	cr_assert_eq(pattern_file(tm_path(&m, "a.bin"), A_SIZE, 1), 0);
	cr_assert_eq(pattern_file(tm_path(&m, "b.bin"), B_SIZE, 2), 0);
	cr_assert_eq(pattern_file(tm_path(&m, "c file.bin"), C_SIZE, 3), 0);
	write_text(tm_path(&m, "views.txt"),
		   "# two views\n"
		   "view v1 page_size=64K\n"
		   "a.bin 0 rest      # all of a\n"
		   "zero 10000\n"
		   "b.bin 4097 1M\n"
		   "\"c file.bin\" 12345 -\n"
		   "\n"
		   "view v2\n"
		   "b.bin 0 5M\n");
	v1_size = A_SIZE + 10000 + (1u << 20) + (C_SIZE - 12345);
	v1 = malloc(v1_size);
	size_t o = 0;
	pattern_fill(v1 + o, A_SIZE, 1, 0);
	o += A_SIZE;
	memset(v1 + o, 0, 10000);
	o += 10000;
	pattern_fill(v1 + o, 1u << 20, 2, 4097);
	o += 1u << 20;
	pattern_fill(v1 + o, C_SIZE - 12345, 3, 12345);
	v2_size = B_SIZE;
	v2 = malloc(v2_size);
	pattern_fill(v2, v2_size, 2, 0);
}

static void setup(void)
{
	make_views();
	cr_assert_eq(tm_start(&m, tm_path(&m, "views.txt"), "page_size=16K,buffer_size=1M"), 0,
		     "mount failed: %s", tm_stderr(&m));
}

static void teardown(void)
{
	if (m.pid > 0)
		cr_expect_eq(tm_stop(&m), 0, "daemon exit status; stderr: %s", tm_stderr(&m));
	tm_cleanup(&m);
	free(v1);
	free(v2);
}

TestSuite(views, .init = setup, .fini = teardown, .timeout = 120);

static void check_read(const char *name, const unsigned char *exp, size_t size)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", m.mnt, name);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
	cr_assert_eq((size_t)st.st_size, size);
	cr_assert_eq(st.st_mode & 07777, 0444);
	cr_assert_eq(st.st_uid, getuid());
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	unsigned char *buf = malloc(size + 1);
	/* whole file, sequentially, in odd-sized reads */
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, 77777 < size + 1 - got ? 77777 : size + 1 - got);
		cr_assert_geq(r, 0, "read: %s", strerror(errno));
		if (r == 0)
			break;
		got += (size_t)r;
	}
	cr_assert_eq(got, size);
	cr_assert(memcmp(buf, exp, size) == 0, "%s differs from its extents", name);
	/* random preads, across page and extent boundaries */
	srand(7);
	for (int i = 0; i < 300; i++) {
		size_t off = (size_t)rand() % size;
		size_t len = 1 + (size_t)rand() % 200000;
		ssize_t r = pread(fd, buf, len, (off_t)off);
		size_t want = off + len > size ? size - off : len;
		cr_assert_eq((size_t)r, want, "pread(%zu, %zu) = %zd", off, len, r);
		cr_assert(memcmp(buf, exp + off, want) == 0, "%s: bytes differ at %zu+%zu", name, off,
			  want);
	}
	cr_assert_eq(pread(fd, buf, 10, (off_t)size), 0);
	free(buf);
	close(fd);
}

Test(views, read_equals_extents)
{
	check_read("v1", v1, v1_size);
	check_read("v2", v2, v2_size);
}

Test(views, listing)
{
	DIR *dir = opendir(m.mnt);
	cr_assert_not_null(dir);
	int seen = 0;
	struct dirent *e;
	while ((e = readdir(dir))) {
		if (!strcmp(e->d_name, "v1"))
			seen |= 1;
		else if (!strcmp(e->d_name, "v2"))
			seen |= 2;
		else if (!strcmp(e->d_name, ".umapfs"))
			seen |= 4;
	}
	closedir(dir);
	cr_assert_eq(seen, 7);
	char p[512];
	snprintf(p, sizeof(p), "%s/nothere", m.mnt);
	struct stat st;
	cr_assert_eq(stat(p, &st), -1);
	cr_assert_eq(errno, ENOENT);
}

struct mt_arg {
	const unsigned char *map, *exp;
	size_t size;
	unsigned seed;
	int bad;
};

static void *mt_check(void *p)
{
	struct mt_arg *a = p;
	unsigned s = a->seed;
	for (int i = 0; i < 400; i++) {
		size_t off = (size_t)rand_r(&s) % a->size;
		size_t len = 1 + (size_t)rand_r(&s) % 100000;
		if (off + len > a->size)
			len = a->size - off;
		if (memcmp(a->map + off, a->exp + off, len) != 0)
			a->bad++;
	}
	return NULL;
}

static void mmap_threads(const char *name, const unsigned char *exp, size_t size, int flags)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", m.mnt, name);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	unsigned char *map = mmap(NULL, size, PROT_READ, flags, fd, 0);
	cr_assert_neq(map, MAP_FAILED, "mmap: %s", strerror(errno));
	pthread_t t[4];
	struct mt_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct mt_arg){ map, exp, size, 100u + (unsigned)i, 0 };
		pthread_create(&t[i], NULL, mt_check, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(a[i].bad, 0, "thread %d saw %d differing ranges", i, a[i].bad);
	}
	cr_assert(memcmp(map, exp, size) == 0);
	munmap(map, size);
	close(fd);
}

Test(views, mmap_from_threads)
{
	mmap_threads("v1", v1, v1_size, MAP_SHARED);
	mmap_threads("v2", v2, v2_size, MAP_SHARED);
	mmap_threads("v1", v1, v1_size, MAP_PRIVATE);
}

Test(views, readonly_mount_refuses_writes)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/v2", m.mnt);
	cr_assert_eq(open(path, O_RDWR), -1);
	cr_assert_eq(errno, EACCES);
	cr_assert_eq(open(path, O_WRONLY), -1);
	cr_assert_eq(errno, EACCES);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
	/* copy-on-write still works and leaves the view alone */
	unsigned char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	p[5] ^= 0xff;
	unsigned char b;
	cr_assert_eq(pread(fd, &b, 1, 5), 1);
	cr_assert_eq(b, v2[5]);
	munmap(p, 8192);
	close(fd);
	cr_assert_eq(truncate(path, 0), -1);
}

Test(views, stats_show_page_and_buffer)
{
	char path[512];
	/* v2 is page aligned: every fill is exactly one 16 KiB page */
	check_read("v2", v2, v2_size);
	snprintf(path, sizeof(path), "%s/.umapfs/stats", m.mnt);
	const char *s = slurp(path);
	cr_assert(strlen(s) > 0, "empty stats");
	uint64_t ps = stats_get(s, "page_size");
	uint64_t fills = stats_get(s, "fills");
	uint64_t bytes = stats_get(s, "bytes_read");
	uint64_t resident = stats_get(s, "resident_bytes");
	uint64_t buffer = stats_get(s, "buffer_size");
	uint64_t mbuf = stats_get(s, "mount_buffer_size");
	uint64_t kc = stats_get(s, "kernel_cached_bytes");
	cr_assert_eq(ps, 16384, "stats:\n%s", s);
	cr_assert_eq(mbuf, 1u << 20, "stats:\n%s", s);
	cr_assert(fills != UINT64_MAX && fills >= v2_size / 16384, "stats:\n%s", s);
	cr_assert_eq(bytes % 16384, 0, "fill bytes not in whole pages:\n%s", s);
	cr_assert(bytes >= v2_size, "stats:\n%s", s);
	cr_assert(resident <= buffer, "stats:\n%s", s);
	cr_assert(buffer <= mbuf, "stats:\n%s", s);
	cr_assert(kc <= mbuf, "kernel cache over budget:\n%s", s);
	cr_assert(stats_get(s, "kernel_invalidations") > 0, "5 MiB through a 1 MiB budget:\n%s", s);
	/* live: a second read shows more reads */
	uint64_t r1 = stats_get(s, "fuse_reads");
	check_read("v2", v2, v2_size);
	s = slurp(path);
	cr_assert_gt(stats_get(s, "fuse_reads"), r1);
}

/* Bytes of `path` [off, off+len) in the kernel page cache, by mincore of a mapping. */
static size_t cached_bytes(int fd, size_t off, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	size_t n = (len + 4095) / 4096, got = 0;
	unsigned char *vec = malloc(n);
	cr_assert_eq(mincore(p, len, vec), 0, "mincore: %s", strerror(errno));
	for (size_t i = 0; i < n; i++)
		got += (vec[i] & 1) * 4096u;
	free(vec);
	munmap(p, len);
	return got;
}

/* A read-only descriptor of the mounted view v2. */
static int open_v2(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/v2", m.mnt);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	return fd;
}

/* Wait (at most 5 s) until all of [off, off+len) of the view is in the kernel page cache. */
static void wait_cached(int fd, size_t off, size_t len)
{
	size_t got = 0;
	for (int i = 0; i < 500 && (got = cached_bytes(fd, off, len)) < len; i++)
		usleep(10000);
	cr_assert_eq(got, len, "after 5 s only %zu of %zu bytes at %zu pushed", got, len, off);
}

/* The mapped bytes [off, off+len) of v2 are the extents' bytes. */
static void expect_v2_bytes(int fd, size_t off, size_t len)
{
	unsigned char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
	cr_assert_neq(p, MAP_FAILED);
	cr_assert(memcmp(p, v2 + off, len) == 0, "pushed bytes at %zu differ from the extents", off);
	munmap(p, len);
}

Test(views, ioctl_prefetch_pushes_whole_pages)
{
	char path[512];
	int fd = open_v2();
	/* 256 KiB (16 pages) at 1 MiB: nothing cached before, all of it after, no READ */
	const size_t off = 1u << 20, len = 256u << 10;
	cr_assert_eq(cached_bytes(fd, off, len), 0);
	snprintf(path, sizeof(path), "%s/.umapfs/stats", m.mnt);
	uint64_t reads0 = stats_get(slurp(path), "fuse_reads");
	struct umapfs_ioc_range rg = {.offset = off, .length = len};
	cr_assert_eq(ioctl(fd, UMAPFS_IOC_PREFETCH, &rg), 0, "ioctl: %s", strerror(errno));
	wait_cached(fd, off, len);
	const char *s = slurp(path);
	cr_assert_eq(stats_get(s, "fuse_reads"), reads0, "a prefetch needs no READ:\n%s", s);
	cr_assert_geq(stats_get(s, "ioctl_prefetches"), 1, "stats:\n%s", s);
	/* the pushed bytes are the view's */
	expect_v2_bytes(fd, off, len);
	/* a range past the end is clipped; an overflowing one is refused */
	rg.offset = v2_size - 100;
	rg.length = 1u << 30;
	cr_assert_eq(ioctl(fd, UMAPFS_IOC_PREFETCH, &rg), 0, "%s", strerror(errno));
	rg.offset = UINT64_MAX - 10;
	rg.length = 100;
	cr_assert_eq(ioctl(fd, UMAPFS_IOC_PREFETCH, &rg), -1);
	cr_assert_eq(errno, EINVAL);
	close(fd);
	/* not a view: ENOTTY, as for any file that does not know the request */
	int sfd = open(path, O_RDONLY);
	cr_assert_geq(sfd, 0);
	cr_assert_eq(ioctl(sfd, UMAPFS_IOC_PREFETCH, &rg), -1);
	cr_assert_eq(errno, ENOTTY);
	close(sfd);
}

Test(views, ioctl_prefetch_past_the_staging_buffer_fills_up_to_the_budget)
{
	int fd = open_v2();
	/*
	 * 3 MiB from 1 MiB: more than the engine's staging buffer (1 MiB here)
	 * and than the budget (1 MiB): the first budget's worth is pushed.
	 */
	const size_t off = 1u << 20, len = 3u << 20, budget = 1u << 20;
	cr_assert_eq(cached_bytes(fd, off, len), 0);
	struct umapfs_ioc_range rg = {.offset = off, .length = len};
	cr_assert_eq(ioctl(fd, UMAPFS_IOC_PREFETCH, &rg), 0, "ioctl: %s", strerror(errno));
	wait_cached(fd, off, budget);
	expect_v2_bytes(fd, off, budget);
	close(fd);
}

Test(views, ioctl_prefetch_ranges_pushes_every_range)
{
	char path[512];
	int fd = open_v2();
	/* three 64 KiB ranges apart from each other (and from the other tests' ranges), one request */
	const size_t off[3] = {(size_t)640 << 10, (size_t)3 << 20, (size_t)4224 << 10}, len = 64u << 10;
	struct umapfs_ioc_ranges rs = {.count = 3};
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(cached_bytes(fd, off[i], len), 0);
		rs.range[i] = (struct umapfs_ioc_range){.offset = off[i], .length = len};
	}
	snprintf(path, sizeof(path), "%s/.umapfs/stats", m.mnt);
	const char *s = slurp(path);
	uint64_t reads0 = stats_get(s, "fuse_reads"), pf0 = stats_get(s, "ioctl_prefetches");
	/* refused whole: too many ranges, a reserved field set, one range overflowing */
	rs.count = UMAPFS_IOC_MAX_RANGES + 1;
	cr_assert_eq(ioctl(fd, UMAPFS_IOC_PREFETCH_RANGES, &rs), -1);
	cr_assert_eq(errno, EINVAL);
	rs.count = 3;
	rs.reserved = 1;
	cr_assert_eq(ioctl(fd, UMAPFS_IOC_PREFETCH_RANGES, &rs), -1);
	cr_assert_eq(errno, EINVAL);
	rs.reserved = 0;
	rs.count = 4;
	rs.range[3] = (struct umapfs_ioc_range){.offset = UINT64_MAX - 10, .length = 100};
	cr_assert_eq(ioctl(fd, UMAPFS_IOC_PREFETCH_RANGES, &rs), -1);
	cr_assert_eq(errno, EINVAL);
	s = slurp(path);
	cr_assert_eq(stats_get(s, "ioctl_prefetches"), pf0, "a refused request asked for something:\n%s", s);
	rs.count = 3;
	cr_assert_eq(ioctl(fd, UMAPFS_IOC_PREFETCH_RANGES, &rs), 0, "ioctl: %s", strerror(errno));
	for (int i = 0; i < 3; i++) {
		wait_cached(fd, off[i], len);
		expect_v2_bytes(fd, off[i], len);
	}
	s = slurp(path);
	cr_assert_eq(stats_get(s, "fuse_reads"), reads0, "a prefetch needs no READ:\n%s", s);
	cr_assert_geq(stats_get(s, "ioctl_prefetches"), pf0 + 3, "stats:\n%s", s);
	/* no ranges: nothing to do, and how a program learns the daemon takes the request */
	rs.count = 0;
	cr_assert_eq(ioctl(fd, UMAPFS_IOC_PREFETCH_RANGES, &rs), 0, "%s", strerror(errno));
	close(fd);
}

Test(views, a_read_of_one_block_brings_the_whole_page)
{
	int fd = open_v2();
	/* one 4 KiB block in the middle of the 16 KiB page at 2 MiB */
	const size_t page = 2u << 20, ps = 16384;
	cr_assert_eq(cached_bytes(fd, page, ps), 0);
	unsigned char b[4096];
	cr_assert_eq(pread(fd, b, sizeof(b), (off_t)(page + 8192)), (ssize_t)sizeof(b));
	cr_assert(memcmp(b, v2 + page + 8192, sizeof(b)) == 0);
	wait_cached(fd, page, ps);
	close(fd);
}

/*
 * Small pages overtake the notifier: a sequential reader faults on a page
 * whose push has not landed while the pages before it are cached, so its
 * READs skip forward inside the window already prefetched.  That is the
 * same forward run, and must prefetch on, not start over (which halved a
 * 64 KiB-page scan).  O_DIRECT sends every READ, in the order given.
 */
Test(views, a_read_that_skips_ahead_inside_the_prefetched_window_keeps_prefetching)
{
	char path[512], stats[512];
	snprintf(path, sizeof(path), "%s/v2", m.mnt);
	snprintf(stats, sizeof(stats), "%s/.umapfs/stats", m.mnt);
	int fd = open(path, O_RDONLY | O_DIRECT);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	const size_t ps = 16384;
	void *b;
	cr_assert_eq(posix_memalign(&b, 4096, 4096), 0);
	/* pages 0..3: a forward run, prefetching past page 4 */
	for (size_t p = 0; p < 4; p++)
		cr_assert_eq(pread(fd, b, 4096, (off_t)(p * ps)), 4096, "%s", strerror(errno));
	const char *s = slurp(stats);
	uint64_t pf = stats_get(s, "seq_prefetches");
	cr_assert_geq(pf, 1, "a run of four pages prefetched nothing:\n%s", s);
	/* page 7, inside what was prefetched for the run */
	cr_assert_eq(pread(fd, b, 4096, (off_t)(7 * ps)), 4096, "%s", strerror(errno));
	cr_assert(memcmp(b, v2 + 7 * ps, 4096) == 0);
	s = slurp(stats);
	cr_assert_eq(stats_get(s, "seq_prefetches"), pf + 1, "the run started over:\n%s", s);
	free(b);
	close(fd);
}

/* Remount the views with more options. */
static void remount(const char *opts)
{
	cr_assert_eq(tm_stop(&m), 0, "daemon exit status; stderr: %s", tm_stderr(&m));
	cr_assert_eq(tm_start(&m, tm_path(&m, "views.txt"), opts), 0, "mount failed: %s",
		     tm_stderr(&m));
}

/* Remount with opts; open v2 (returned) and name the stats file in stats[512]. */
static int remount_open_v2(const char *opts, char *stats)
{
	remount(opts);
	snprintf(stats, 512, "%s/.umapfs/stats", m.mnt);
	return open_v2();
}

/* Read one block of page p of v2 (16 KiB pages) and check it. */
static void touch_v2_page(int fd, size_t p)
{
	unsigned char b[4096];
	cr_assert_eq(pread(fd, b, sizeof(b), (off_t)(p * 16384)), (ssize_t)sizeof(b));
	cr_assert(memcmp(b, v2 + p * 16384, sizeof(b)) == 0, "page %zu differs", p);
}

/*
 * Read-around: the third random miss in a region of 16 pages (256 KiB) fills
 * and pushes the whole region; a lone miss elsewhere fills only its page; a
 * view that got a PREFETCH request gets none.
 */
Test(views, dense_random_misses_fill_their_region)
{
	char stats[512];
	int fd = remount_open_v2("page_size=16K,buffer_size=1M,readaround=256K", stats);
	const size_t ps = 16384, region = 16 * ps;
	cr_assert_eq(stats_get(slurp(stats), "readaround_bytes"), region);
	/* a lone miss in the region at 2 pages of 16: its page only */
	touch_v2_page(fd, 2 * 16 + 3);
	wait_cached(fd, (2 * 16 + 3) * ps, ps);
	/* three misses, none following another, in the first region: all of it */
	touch_v2_page(fd, 9);
	touch_v2_page(fd, 4);
	touch_v2_page(fd, 13);
	wait_cached(fd, 0, region);
	expect_v2_bytes(fd, 0, region);
	const char *s = slurp(stats);
	cr_assert_geq(stats_get(s, "readaround_prefetches"), 1, "%s", s);
	usleep(200000); /* nothing else came in the meantime */
	cr_assert_eq(cached_bytes(fd, 2 * region, region), ps, "the lone miss read around:\n%s",
		     slurp(stats));
	/* after a PREFETCH request the reader decides: no read-around */
	struct umapfs_ioc_range rg = {.offset = 4 * region, .length = ps};
	cr_assert_eq(ioctl(fd, UMAPFS_IOC_PREFETCH, &rg), 0, "ioctl: %s", strerror(errno));
	uint64_t ra = stats_get(slurp(stats), "readaround_prefetches");
	touch_v2_page(fd, 6 * 16 + 9);
	touch_v2_page(fd, 6 * 16 + 4);
	touch_v2_page(fd, 6 * 16 + 13);
	touch_v2_page(fd, 6 * 16 + 1);
	usleep(200000);
	cr_assert_eq(stats_get(slurp(stats), "readaround_prefetches"), ra);
	cr_assert_eq(cached_bytes(fd, 6 * region, region), 4 * ps);
	close(fd);
}

/*
 * A region that proves dense (its third miss) lends read-around to regions
 * that have not: their first miss fills them whole, four of them (AR_EARN),
 * then the credit is spent and a lone miss reads its page.
 */
Test(views, a_dense_region_lends_read_around_to_fresh_ones)
{
	char stats[512];
	int fd = remount_open_v2("page_size=16K,buffer_size=8M,readaround=256K", stats);
	const size_t ps = 16384, region = 16 * ps;
	touch_v2_page(fd, 9);
	touch_v2_page(fd, 4);
	touch_v2_page(fd, 13);
	wait_cached(fd, 0, region);
	for (size_t r = 3; r <= 9; r += 2) {
		touch_v2_page(fd, r * 16 + 5);
		wait_cached(fd, r * region, region);
		expect_v2_bytes(fd, r * region, region);
	}
	touch_v2_page(fd, 11 * 16 + 5);
	usleep(200000);
	cr_assert_eq(cached_bytes(fd, 11 * region, region), ps, "read around without credit:\n%s",
		     slurp(stats));
	close(fd);
}

/*
 * A read-around region is at least 4 pages, whatever readaround= says: with
 * pages as large as half the region (4M pages, the default 8M) a dense miss
 * would otherwise read only its own page.  Here 16K pages and readaround=32K:
 * the third miss in pages 0-3 fills the fourth.
 */
Test(views, read_around_regions_are_at_least_four_pages)
{
	char stats[512];
	int fd = remount_open_v2("page_size=16K,buffer_size=1M,readaround=32K", stats);
	const size_t ps = 16384;
	touch_v2_page(fd, 0);
	touch_v2_page(fd, 2);
	touch_v2_page(fd, 3);
	wait_cached(fd, 0, 4 * ps);
	expect_v2_bytes(fd, ps, ps);
	close(fd);
}

/* The kernel's readahead window for the mount (KiB), from sysfs. */
static unsigned long mount_read_ahead_kb(void)
{
	struct stat st;
	cr_assert_eq(stat(m.mnt, &st), 0);
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev),
		 minor(st.st_dev));
	FILE *f = fopen(path, "r");
	cr_assert(f, "%s: %s", path, strerror(errno));
	unsigned long kb = 0;
	cr_assert_eq(fscanf(f, "%lu", &kb), 1, "%s", path);
	fclose(f);
	return kb;
}

/*
 * Default kernel readahead of a read-only mount: one block under 1M pages,
 * 256K from 1M (a random fault's window seldom reaches a second page).
 */
Test(views, default_readahead_follows_page_size)
{
	char stats[512];
	int fd = remount_open_v2("page_size=16K,buffer_size=1M", stats);
	cr_assert_eq(stats_get(slurp(stats), "readahead_bytes"), 4096);
	cr_assert_eq(mount_read_ahead_kb(), 4);
	close(fd);
	fd = remount_open_v2("page_size=1M,buffer_size=8M", stats);
	cr_assert_eq(stats_get(slurp(stats), "readahead_bytes"), 256 << 10);
	cr_assert_eq(mount_read_ahead_kb(), 256);
	close(fd);
}

/*
 * Read-around never evicts: once the budget (4 MiB here) has been filled,
 * misses read only their own pages, however dense, even with regions small
 * enough to fit the room eviction leaves free (1/8 of the budget).
 */
Test(views, dense_random_misses_read_around_only_into_free_budget)
{
	char stats[512];
	int fd = remount_open_v2("page_size=16K,buffer_size=4M,readaround=64K", stats);
	const size_t ps = 16384, region = 4 * ps;
	/* all 5 MiB in order through the budget */
	unsigned char *buf = malloc(v2_size);
	cr_assert_eq(read(fd, buf, v2_size), (ssize_t)v2_size);
	cr_assert(memcmp(buf, v2, v2_size) == 0);
	free(buf);
	const char *s = slurp(stats);
	cr_assert_gt(stats_get(s, "kernel_invalidations"), 0, "%s", s);
	uint64_t ra = stats_get(s, "readaround_prefetches");
	/*
	 * Three of the four pages of each of the first eight regions, dropped
	 * long ago: the room left free varies as pages come and go, and some
	 * third misses would find room for the fourth page, but none beyond
	 * the slack.
	 */
	for (size_t r = 0; r < 8; r++) {
		cr_assert_eq(cached_bytes(fd, r * region, region), 0, "region %zu cached before", r);
		touch_v2_page(fd, r * 4 + 3);
		touch_v2_page(fd, r * 4 + 1);
		touch_v2_page(fd, r * 4 + 2);
	}
	usleep(200000);
	s = slurp(stats);
	cr_assert_eq(stats_get(s, "readaround_prefetches"), ra, "%s", s);
	for (size_t r = 0; r < 8; r++)
		cr_assert_eq(cached_bytes(fd, r * region, region), 3 * ps, "region %zu", r);
	close(fd);
}
