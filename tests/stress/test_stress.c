/*
 * Suite 'stress': many concurrent readers of one view through a real mount.
 *
 * The mix that once wedged the daemon: random and sequential mmap scans
 * (with and without MADV_RANDOM), a cat-like buffered read, O_DIRECT reads
 * of 1 MiB, buffered 4 KiB reads from an offset, a loop reading
 * .umapfs/stats, and reads that straddle an application-page boundary both
 * with O_DIRECT and through the page cache, next to plain O_DIRECT readers
 * that keep one-page READs in flight.  A READ spanning two pages used to wait
 * for the whole pin budget while one-page READs kept taking it, holding the
 * kernel's folio locks, so the notifier thread (and every push and
 * invalidation behind it) waited with it and the mount crawled or stopped.
 *
 * Every reader is a child process (a wedged mount can leave it in an
 * uninterruptible wait, and an aborted connection raises SIGBUS in a
 * mapping), runs for RUN_S seconds, checks every byte it reads against the
 * backing file, and records its slowest single read or fault.  The test fails
 * when a reader sees wrong bytes, an error, an operation slower than OP_MAX_S,
 * or does not finish by DEADLINE_S; then the connection is aborted through
 * /sys/fs/fuse/connections/<minor>/abort and the mount removed, so the suite
 * itself never hangs.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../fs/fsutil.h"

#define FILE_SIZE (UINT64_C(64) << 20)
#define RUN_S 6.0       /* each reader's working time */
#define OP_MAX_S 1.0    /* one read or fault slower than this is a stall */
#define DEADLINE_S 40.0 /* every reader must have exited by then */
#define SEED 7

enum kind {
	K_MMAP_RANDOM,
	K_MMAP_SEQ,
	K_MMAP_MADV_RANDOM,
	K_CAT,
	K_DIRECT_1M,
	K_BUF_4K,
	K_STATS,
	K_CROSS_DIRECT,
	K_CROSS_BUFFERED,
	K_DIRECT_128K,
};

static const char *kind_name[] = {
	"mmap-random", "mmap-seq", "mmap-madv-random", "cat", "direct-1M",
	"buffered-4K", "stats", "cross-direct", "cross-buffered", "direct-128K",
};

/* One reader's outcome, in memory shared with the test process. */
struct result {
	int kind;
	uint64_t ops, bytes, mismatches;
	double max_op_s;
	uint64_t max_op_off;
	int done;
	char err[160];
};

struct ctx {
	const char *view;    /* the file in the mount */
	const char *backing; /* the file it shows */
	const char *stats;
	uint64_t page_size;
	struct result *res;
	int backing_fd;
	uint64_t rng;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rnd(struct ctx *c)
{
	uint64_t x = c->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return c->rng = x;
}

static void note_op(struct ctx *c, double t0, uint64_t off, size_t len)
{
	double dt = now_s() - t0;
	c->res->ops++;
	c->res->bytes += len;
	if (dt > c->res->max_op_s) {
		c->res->max_op_s = dt;
		c->res->max_op_off = off;
	}
}

/* Compare len bytes read from the view at off with the backing file. */
static void check(struct ctx *c, const void *got, size_t len, uint64_t off)
{
	static char want[1 << 20];
	for (size_t done = 0; done < len;) {
		size_t l = len - done < sizeof(want) ? len - done : sizeof(want);
		ssize_t r = pread(c->backing_fd, want, l, (off_t)(off + done));
		if (r != (ssize_t)l) {
			snprintf(c->res->err, sizeof(c->res->err), "backing pread at %llu: %s",
				 (unsigned long long)(off + done), r < 0 ? strerror(errno) : "short");
			_exit(1);
		}
		if (memcmp((const char *)got + done, want, l) != 0)
			c->res->mismatches++;
		done += l;
	}
}

static void fail(struct ctx *c, const char *what, uint64_t off, ssize_t r)
{
	snprintf(c->res->err, sizeof(c->res->err), "%s at %llu: %s", what,
		 (unsigned long long)off, r < 0 ? strerror(errno) : "short read");
	_exit(1);
}

static void run_mmap(struct ctx *c, int seq, int madv_random)
{
	int fd = open(c->view, O_RDONLY);
	if (fd < 0)
		fail(c, "open", 0, -1);
	const unsigned char *m = mmap(NULL, FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		fail(c, "mmap", 0, -1);
	if (madv_random)
		madvise((void *)m, FILE_SIZE, MADV_RANDOM);
	double end = now_s() + RUN_S;
	uint64_t pages = FILE_SIZE / 4096, next = 0;
	static unsigned char copy[4096];
	while (now_s() < end) {
		uint64_t off = (seq ? next++ % pages : rnd(c) % pages) * 4096;
		double t0 = now_s();
		memcpy(copy, m + off, sizeof(copy)); /* the fault, if any */
		note_op(c, t0, off, sizeof(copy));
		check(c, copy, sizeof(copy), off);
	}
	munmap((void *)m, FILE_SIZE);
	close(fd);
}

/* Reads of `len` at offsets chosen by `pick`, buffered or O_DIRECT. */
static void run_reads(struct ctx *c, int flags, size_t len, uint64_t (*pick)(struct ctx *, size_t))
{
	int fd = open(c->view, O_RDONLY | flags);
	if (fd < 0)
		fail(c, "open", 0, -1);
	void *buf;
	if (posix_memalign(&buf, 4096, len))
		fail(c, "posix_memalign", 0, -1);
	double end = now_s() + RUN_S;
	while (now_s() < end) {
		uint64_t off = pick(c, len);
		double t0 = now_s();
		ssize_t r = pread(fd, buf, len, (off_t)off);
		if (r != (ssize_t)len)
			fail(c, "pread", off, r);
		note_op(c, t0, off, len);
		check(c, buf, len, off);
	}
	free(buf);
	close(fd);
}

static uint64_t pick_seq(struct ctx *c, size_t len)
{
	static uint64_t next;
	(void)c;
	uint64_t off = next;
	next = next + len >= FILE_SIZE ? 0 : next + len;
	return off;
}

static uint64_t pick_seq_from_middle(struct ctx *c, size_t len)
{
	static uint64_t next = FILE_SIZE / 2 + 4096 * 3;
	(void)c;
	uint64_t off = next;
	next = next + 2 * len > FILE_SIZE ? 4096 : next + len;
	return off;
}

/* 128 KiB straddling a random page boundary: a READ spanning two pages. */
static uint64_t pick_cross(struct ctx *c, size_t len)
{
	uint64_t npages = FILE_SIZE / c->page_size;
	uint64_t b = (1 + rnd(c) % (npages - 1)) * c->page_size;
	return b - len / 2;
}

/* Aligned to their length: one-page READs when pages are at least that large. */
static uint64_t pick_aligned(struct ctx *c, size_t len)
{
	return (rnd(c) % (FILE_SIZE / len)) * len;
}

static void run_stats(struct ctx *c)
{
	double end = now_s() + RUN_S;
	static char buf[8192];
	while (now_s() < end) {
		double t0 = now_s();
		int fd = open(c->stats, O_RDONLY);
		if (fd < 0)
			fail(c, "open stats", 0, -1);
		ssize_t r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			fail(c, "read stats", 0, r);
		buf[r] = 0;
		note_op(c, t0, 0, (size_t)r);
		if (!strstr(buf, "fuse_reads "))
			c->res->mismatches++;
		usleep(20000);
	}
}

static void reader(struct ctx *c)
{
	c->backing_fd = open(c->backing, O_RDONLY);
	if (c->backing_fd < 0)
		fail(c, "open backing", 0, -1);
	switch (c->res->kind) {
	case K_MMAP_RANDOM:
		run_mmap(c, 0, 0);
		break;
	case K_MMAP_SEQ:
		run_mmap(c, 1, 0);
		break;
	case K_MMAP_MADV_RANDOM:
		run_mmap(c, 0, 1);
		break;
	case K_CAT:
		run_reads(c, 0, 128 << 10, pick_seq);
		break;
	case K_DIRECT_1M:
		run_reads(c, O_DIRECT, 1 << 20, pick_seq);
		break;
	case K_BUF_4K:
		run_reads(c, 0, 4096, pick_seq_from_middle);
		break;
	case K_STATS:
		run_stats(c);
		break;
	case K_CROSS_DIRECT:
		run_reads(c, O_DIRECT, 128 << 10, pick_cross);
		break;
	case K_CROSS_BUFFERED:
		run_reads(c, 0, 128 << 10, pick_cross);
		break;
	case K_DIRECT_128K:
		run_reads(c, O_DIRECT, 128 << 10, pick_aligned);
		break;
	}
	c->res->done = 1;
	_exit(0);
}

/* Abort the FUSE connection of the device `dev`: every waiting request fails. */
static void abort_connection(dev_t dev)
{
	char path[128];
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", minor(dev));
	int fd = open(path, O_WRONLY);
	if (fd < 0) {
		cr_log_error("cannot open %s: %s", path, strerror(errno));
		return;
	}
	if (write(fd, "1", 1) != 1)
		cr_log_error("cannot write %s: %s", path, strerror(errno));
	close(fd);
}

/* The mixed readers. */
static const enum kind mixed[] = {
	K_MMAP_RANDOM, K_MMAP_RANDOM,      K_MMAP_RANDOM, K_MMAP_SEQ,
	K_MMAP_MADV_RANDOM, K_CAT,         K_DIRECT_1M,   K_BUF_4K,
	K_STATS,       K_CROSS_DIRECT,     K_CROSS_BUFFERED, K_DIRECT_128K,
};

/* Two-page READs beside a steady stream of one-page READs. */
static const enum kind crossing[] = {
	K_DIRECT_128K, K_DIRECT_128K, K_DIRECT_128K, K_DIRECT_128K, K_DIRECT_128K,
	K_DIRECT_128K, K_CROSS_DIRECT, K_CROSS_BUFFERED, K_MMAP_RANDOM,
};

#define MAX_READERS 16

static void stress(const char *tag, const char *opts, uint64_t page_size, const enum kind *mix,
		   size_t nreaders)
{
	struct tmount m;
	tm_init(&m, tag);
	const char *backing = strdup(tm_path(&m, "data.bin"));
	cr_assert_eq(pattern_file(backing, FILE_SIZE, SEED), 0);
	write_text(tm_path(&m, "views.txt"), "view data\ndata.bin 0 rest\n");
	if (tm_start(&m, tm_path(&m, "views.txt"), opts) != 0) {
		const char *err = tm_stderr(&m);
		tm_cleanup(&m);
		cr_assert_fail("mount failed: %s", err);
	}
	struct stat st;
	cr_assert_eq(stat(m.mnt, &st), 0);
	dev_t dev = st.st_dev;
	char view[320], stats[320];
	snprintf(view, sizeof(view), "%s/data", m.mnt);
	snprintf(stats, sizeof(stats), "%s/.umapfs/stats", m.mnt);

	struct result *res = mmap(NULL, nreaders * sizeof(*res), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(res, MAP_FAILED);
	pid_t pids[MAX_READERS];
	cr_assert_leq(nreaders, MAX_READERS);
	for (size_t i = 0; i < nreaders; i++) {
		res[i].kind = mix[i];
		pids[i] = fork();
		cr_assert_geq(pids[i], 0);
		if (pids[i] == 0) {
			struct ctx c = { view, backing, stats, page_size, &res[i], -1,
					 0x9e3779b97f4a7c15ull * (i + 1) };
			reader(&c);
		}
	}

	/* Wait for every reader until the deadline. */
	double deadline = now_s() + DEADLINE_S;
	size_t left = nreaders;
	int status[MAX_READERS];
	for (size_t i = 0; i < nreaders; i++)
		status[i] = -1;
	while (left && now_s() < deadline) {
		for (size_t i = 0; i < nreaders; i++) {
			int s;
			if (status[i] == -1 && waitpid(pids[i], &s, WNOHANG) == pids[i]) {
				status[i] = s;
				left--;
			}
		}
		if (left)
			usleep(20000);
	}
	int wedged = left > 0;
	if (wedged) {
		/* Free the readers stuck in the mount, then reap them. */
		abort_connection(dev);
		for (size_t i = 0; i < nreaders; i++)
			if (status[i] == -1)
				kill(pids[i], SIGKILL);
		for (size_t i = 0; i < nreaders; i++)
			if (status[i] == -1)
				waitpid(pids[i], &status[i], 0);
	}

	int bad = 0;
	for (size_t i = 0; i < nreaders; i++) {
		struct result *r = &res[i];
		int ok = r->done && WIFEXITED(status[i]) && WEXITSTATUS(status[i]) == 0 &&
			 !r->mismatches && r->ops > 0 && r->max_op_s <= OP_MAX_S;
		char line[400];
		snprintf(line, sizeof(line),
			 "%-16s %s: %llu ops, %.1f MiB, slowest %.3f s (at %llu), %llu mismatches%s%s%s",
			 kind_name[r->kind], ok ? "ok" : "FAILED", (unsigned long long)r->ops,
			 (double)r->bytes / 1048576.0, r->max_op_s,
			 (unsigned long long)r->max_op_off, (unsigned long long)r->mismatches,
			 !r->done ? (wedged ? ", did not finish by the deadline" : ", died") : "",
			 r->err[0] ? ": " : "", r->err);
		if (ok)
			cr_log_info("%s", line);
		else
			cr_log_error("%s", line);
		bad += !ok;
	}
	const char *stats_text = wedged ? "" : slurp(stats);
	uint64_t reads = stats_get(stats_text, "fuse_reads");
	uint64_t copied = stats_get(stats_text, "copied_reads");
	if (!wedged)
		cr_log_info("%s: fuse_reads %llu, copied_reads %llu", opts,
			    (unsigned long long)reads, (unsigned long long)copied);
	int st_exit = wedged ? -1 : tm_stop(&m);
	const char *err = tm_stderr(&m);
	tm_cleanup(&m);
	munmap(res, nreaders * sizeof(*res));
	free((void *)backing);
	cr_expect_not(wedged, "%s: %zu reader(s) still stuck %.0f s after the start; connection aborted",
		      opts, left, DEADLINE_S);
	cr_expect_eq(bad, 0, "%s: %d of %zu readers failed (see the log above)", opts, bad, nreaders);
	if (!wedged)
		cr_expect_eq(st_exit, 0, "daemon exit status %d; stderr: %s", st_exit, err);
}

#define MIX(a) (a), (sizeof(a) / sizeof((a)[0]))

/* The configuration that wedged: 1 MiB pages, a 4 MiB buffer (4 MiB staging). */
Test(stress, mixed_readers_1m_pages_4m_buffer, .timeout = 90)
{
	stress("stress1m", "page_size=1M,buffer_size=4M", UINT64_C(1) << 20, MIX(mixed));
}

/* Small pages and a small buffer: READs of many pages, copied rather than pinned. */
Test(stress, mixed_readers_64k_pages_1m_buffer, .timeout = 90)
{
	stress("stress64k", "page_size=64K,buffer_size=1M", UINT64_C(64) << 10, MIX(mixed));
}

/*
 * The stall itself: with 1 MiB pages the pin budget is two pages, which a
 * READ straddling a page boundary needs whole; six readers keep one-page
 * READs in flight all the time.
 */
Test(stress, two_page_reads_beside_one_page_reads, .timeout = 90)
{
	stress("stresscross", "page_size=1M,buffer_size=4M", UINT64_C(1) << 20, MIX(crossing));
}

/* Buffered sequential readers, one of them starting inside a page. */
static const enum kind sequential[] = { K_BUF_4K, K_CAT, K_MMAP_SEQ };

/*
 * A staging buffer of one page: a push must never hold the only frame while
 * it waits for the folios of a READ that needs a frame for its next page.
 */
Test(stress, sequential_readers_1m_pages_1m_buffer, .timeout = 90)
{
	stress("stress1m1m", "page_size=1M,buffer_size=1M", UINT64_C(1) << 20, MIX(sequential));
}
