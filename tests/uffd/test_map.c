/*
 * Suite 'uffd': the in-process mapping (include/umapfs/map.h) against real
 * files, real userfaultfd and the real engine; I/O errors injected through
 * the engine's umapfs_sys seam.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>

#include "umapfs/map.h"
#include "util.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)

static struct umapfs_map *map_file(const char *path, uint64_t off, uint64_t len, uint64_t page,
				   uint64_t buf, unsigned flags, const struct umapfs_sys *sys)
{
	struct umapfs_map_config c;
	umapfs_map_config_init(&c);
	c.page_size = page;
	c.buffer_size = buf;
	c.flags = flags;
	c.sys = sys;
	struct umapfs_map *m = NULL;
	int r = umapfs_map_file(path, off, len, &c, &m);
	cr_assert_eq(r, 0, "umapfs_map_file(%s): %s", path, strerror(-r));
	return m;
}

/* Rss of the mapping's VMA in bytes, from /proc/self/smaps. */
static uint64_t vma_rss(const void *base)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	cr_assert(f);
	char line[512];
	bool in = false;
	uint64_t rss = UINT64_MAX;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = lo == (unsigned long)(uintptr_t)base;
			continue;
		}
		unsigned long kb;
		if (in && sscanf(line, "Rss: %lu kB", &kb) == 1) {
			rss = (uint64_t)kb * 1024;
			break;
		}
	}
	fclose(f);
	cr_assert(rss != UINT64_MAX, "no VMA at %p in smaps", base);
	return rss;
}

/* ---- random multi-threaded reads ---- */

struct rd_arg {
	const unsigned char *base;
	uint64_t size, file_off, seed;
	unsigned id;
	int bad;
};

static void *reader(void *p)
{
	struct rd_arg *a = p;
	uint64_t x = 88172645463325252ull ^ a->id;
	for (int i = 0; i < 2000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t o = x % a->size;
		if (a->base[o] != pb(a->seed, a->file_off + o))
			a->bad++;
	}
	return NULL;
}

static void random_reads(uint64_t page, uint64_t buf, uint64_t off, uint64_t len)
{
	char path[64];
	mkpat(path, sizeof(path), 8 * MiB, 1);
	struct umapfs_map *m = map_file(path, off, len, page, buf, 0, NULL);
	if (!len)
		len = 8 * MiB - off;
	cr_assert_eq(umapfs_map_size(m), len);
	struct rd_arg a[4];
	pthread_t t[4];
	for (unsigned i = 0; i < 4; i++) {
		a[i] = (struct rd_arg){ umapfs_map_addr(m), len, off, 1, i, 0 };
		pthread_create(&t[i], NULL, reader, &a[i]);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(a[i].bad, 0, "thread %u: %d wrong bytes", i, a[i].bad);
	}
	/* every byte of the mapping, including the zero tail of the last 4 KiB */
	unsigned char *b = umapfs_map_addr(m);
	for (uint64_t i = 0; i < len; i += 4093)
		cr_assert_eq(b[i], pb(1, off + i), "byte %llu", (unsigned long long)i);
	for (uint64_t i = len; i % 4096; i++)
		cr_assert_eq(b[i], 0);
	struct umapfs_map_stats st;
	umapfs_map_stats(m, &st);
	cr_expect_gt(st.faults, 0);
	cr_expect_eq(st.errors, 0);
	cr_assert_eq(umapfs_map_unmap(m), 0);
	unlink(path);
}

Test(uffd, random_reads_64k, .timeout = 60) { random_reads(64 * KiB, 1 * MiB, 0, 0); }
Test(uffd, random_reads_4k, .timeout = 60) { random_reads(4 * KiB, 256 * KiB, 0, 0); }
/* an offset that is not page aligned and a length that is not a page multiple */
Test(uffd, random_reads_offset, .timeout = 60)
{
	random_reads(64 * KiB, 1 * MiB, 64 * KiB + 100, 5 * MiB + 777);
}
Test(uffd, random_reads_1m, .timeout = 60) { random_reads(1 * MiB, 4 * MiB, 4096, 0); }

/* ---- read-write ---- */

Test(uffd, rw_roundtrip, .timeout = 60)
{
	char path[64];
	uint64_t size = 4 * MiB;
	mkpat(path, sizeof(path), size, 2);
	unsigned char *want = malloc(size), *got = malloc(size);
	for (uint64_t i = 0; i < size; i++)
		want[i] = pb(2, i);
	/* buffer of 8 pages: most writes are evicted (and written back) before the flush */
	struct umapfs_map *m = map_file(path, 0, 0, 64 * KiB, 512 * KiB, UMAPFS_MAP_WRITE, NULL);
	unsigned char *b = umapfs_map_addr(m);
	uint64_t x = 12345;
	for (int i = 0; i < 3000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t o = x % (size - 100);
		if (i % 3 == 0) { /* read first, then write: a WP fault */
			cr_assert_eq(b[o], want[o]);
		}
		size_t n = 1 + x % 97;
		for (size_t k = 0; k < n; k++)
			b[o + k] = want[o + k] = (unsigned char)(i + k);
	}
	cr_assert_eq(umapfs_map_flush(m), 0);
	pread_all(path, got, size, 0);
	cr_assert(memcmp(got, want, size) == 0, "file differs after flush");
	/* mapped bytes are still right, and more writes after the flush are kept too */
	cr_assert(memcmp(b, want, size) == 0, "mapping differs after flush");
	for (uint64_t o = 0; o < size; o += 40000)
		b[o] = want[o] = (unsigned char)(o >> 8);
	struct umapfs_map_stats st;
	umapfs_map_stats(m, &st);
	cr_expect_gt(st.wp_faults, 0);
	cr_expect_gt(st.copybacks, 0);
	cr_assert_eq(umapfs_map_unmap(m), 0);
	pread_all(path, got, size, 0);
	cr_assert(memcmp(got, want, size) == 0, "file differs after unmap");
	free(want);
	free(got);
	unlink(path);
}

Test(uffd, readonly_view_refuses_write_mapping)
{
	char path[64];
	mkpat(path, sizeof(path), 1 * MiB, 3);
	struct umapfs_engine_config ec;
	umapfs_engine_config_init(&ec);
	ec.buffer_size = 4 * MiB;
	struct umapfs_engine *e;
	cr_assert_eq(umapfs_engine_create(&ec, &e), 0);
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = path, .length = 1 * MiB };
	struct umapfs_view_desc d;
	umapfs_view_desc_init(&d);
	d.size = 1 * MiB;
	d.extents = &x;
	d.n_extents = 1;
	struct umapfs_view *v;
	cr_assert_eq(umapfs_view_create(e, &d, &v), 0);
	struct umapfs_map_config c;
	umapfs_map_config_init(&c);
	c.flags = UMAPFS_MAP_WRITE;
	struct umapfs_map *m;
	cr_assert_eq(umapfs_map_view(v, &c, &m), -EACCES);
	c.flags = 0;
	cr_assert_eq(umapfs_map_view(v, &c, &m), 0);
	cr_assert_eq(((unsigned char *)umapfs_map_addr(m))[777777], pb(3, 777777));
	cr_assert_eq(umapfs_map_unmap(m), 0);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	cr_assert_eq(umapfs_map_file("/nonexistent/x", 0, 0, NULL, &m), -ENOENT);
	cr_assert_eq(umapfs_map_file(path, 2 * MiB, 0, NULL, &m), -ERANGE);
	unlink(path);
}

/* ---- the budget ---- */

static void budget(unsigned flags)
{
	char path[64];
	uint64_t size = 32 * MiB, buf = 1 * MiB, page = 64 * KiB;
	mkpat(path, sizeof(path), size, 4);
	struct umapfs_map *m = map_file(path, 0, 0, page, buf, flags, NULL);
	volatile unsigned char *b = umapfs_map_addr(m);
	uint64_t maxrss = 0, sum = 0;
	for (uint64_t o = 0; o < size; o += 4096) {
		if (flags & UMAPFS_MAP_WRITE)
			b[o] = (unsigned char)(b[o] + 1);
		else
			sum += b[o];
		if (o % (2 * MiB) == 0) {
			uint64_t r = vma_rss((const void *)b);
			if (r > maxrss)
				maxrss = r;
		}
	}
	(void)sum;
	uint64_t r = vma_rss((const void *)b);
	if (r > maxrss)
		maxrss = r;
	cr_log_info("max Rss of the %llu MiB mapping with a %llu KiB buffer: %llu KiB",
		    (unsigned long long)(size >> 20), (unsigned long long)(buf >> 10),
		    (unsigned long long)(maxrss >> 10));
	cr_assert_leq(maxrss, buf + 2 * page, "Rss %llu exceeds the buffer %llu",
		      (unsigned long long)maxrss, (unsigned long long)buf);
	cr_assert_gt(maxrss, 0);
	struct umapfs_map_stats st;
	umapfs_map_stats(m, &st);
	cr_expect_geq(st.zaps, size / page - buf / page);
	cr_assert_eq(umapfs_map_unmap(m), 0);
	if (flags & UMAPFS_MAP_WRITE) {
		unsigned char *got = malloc(size);
		pread_all(path, got, size, 0);
		for (uint64_t o = 0; o < size; o++)
			if (got[o] != (unsigned char)(pb(4, o) + (o % 4096 == 0)))
				cr_assert_fail("byte %llu wrong after write-back", (unsigned long long)o);
		free(got);
	}
	unlink(path);
}

Test(uffd, budget_read, .timeout = 60) { budget(0); }
Test(uffd, budget_write, .timeout = 60) { budget(UMAPFS_MAP_WRITE); }

/* ---- errors ---- */

static _Atomic uint64_t bad_off = UINT64_MAX;
static _Atomic int slow_us;

static int complete_hook(void *arg, int is_write, int fd, uint64_t off, size_t len, int res)
{
	(void)arg, (void)fd;
	if (atomic_load(&slow_us))
		usleep((useconds_t)atomic_load(&slow_us));
	uint64_t b = atomic_load(&bad_off);
	if (!is_write && b != UINT64_MAX && b >= off && b < off + len)
		return -EIO;
	return res;
}

static const struct umapfs_sys seam = { .complete = complete_hook };

static __thread sigjmp_buf jb;
static __thread volatile int jb_armed;
static _Atomic uintptr_t sig_addr;
static _Atomic int sig_no;

static void on_sig(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	atomic_store(&sig_no, sig);
	atomic_store(&sig_addr, (uintptr_t)si->si_addr);
	if (jb_armed)
		siglongjmp(jb, 1);
	signal(sig, SIG_DFL);
}

static void catch_signals(void)
{
	struct sigaction sa = { .sa_sigaction = on_sig, .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

Test(uffd, eio_gives_sigbus_with_cause, .timeout = 30)
{
	char path[64];
	uint64_t page = 64 * KiB;
	mkpat(path, sizeof(path), 4 * MiB, 5);
	catch_signals();
	atomic_store(&bad_off, 3 * page + 10);
	struct umapfs_map *m = map_file(path, 0, 0, page, 1 * MiB, 0, &seam);
	volatile unsigned char *b = umapfs_map_addr(m);
	cr_assert_eq(b[page], pb(5, page));
	cr_assert_eq(umapfs_map_last_error(m, NULL), 0);
	volatile int got = 0;
	jb_armed = 1;
	if (sigsetjmp(jb, 1) == 0) {
		(void)b[3 * page + 5000];
		got = -1;
	} else {
		got = 1;
	}
	jb_armed = 0;
	cr_assert_eq(got, 1, "no SIGBUS at the failed page");
	cr_assert_eq(atomic_load(&sig_no), SIGBUS);
	cr_assert_eq(atomic_load(&sig_addr) & ~(uintptr_t)4095, (uintptr_t)&b[3 * page + 4096]);
	uint64_t off = 0;
	cr_assert_eq(umapfs_map_last_error(m, &off), -EIO);
	cr_assert_eq(off, 3 * page);
	cr_assert_eq(umapfs_map_last_error(NULL, &off), -EIO);
	/* the other pages still work; the bad one keeps failing until cleared */
	cr_assert_eq(b[5 * page], pb(5, 5 * page));
	got = 0;
	jb_armed = 1;
	if (sigsetjmp(jb, 1) == 0)
		(void)b[3 * page];
	else
		got = 1;
	jb_armed = 0;
	cr_assert_eq(got, 1);
	atomic_store(&bad_off, UINT64_MAX);
	cr_assert_eq(umapfs_map_clear_error(m), 0);
	cr_assert_eq(umapfs_map_last_error(m, NULL), 0);
	cr_assert_eq(b[3 * page + 5000], pb(5, 3 * page + 5000));
	struct umapfs_map_stats st;
	umapfs_map_stats(m, &st);
	cr_assert_geq(st.errors, 1);
	cr_assert_eq(umapfs_map_unmap(m), 0);
	unlink(path);
}

struct fl_arg {
	const unsigned char *base;
	uint64_t size;
	atomic_bool *unmapping;
	_Atomic int verified;
	int bad, segv;
};

static void *faulter(void *p)
{
	struct fl_arg *a = p;
	uint64_t x = (uintptr_t)p | 1;
	jb_armed = 1;
	if (sigsetjmp(jb, 1)) {
		jb_armed = 0;
		a->segv++;
		return NULL;
	}
	while (!atomic_load(a->unmapping)) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t o = x % a->size;
		unsigned char c = a->base[o];
		/* verify only reads that finished before unmap began */
		if (!atomic_load(a->unmapping)) {
			a->verified++;
			if (c != pb(6, o))
				a->bad++;
		}
	}
	jb_armed = 0;
	return NULL;
}

Test(uffd, unmap_while_faulting, .timeout = 60)
{
	char path[64];
	mkpat(path, sizeof(path), 16 * MiB, 6);
	catch_signals();
	for (int round = 0; round < 4; round++) {
		atomic_store(&slow_us, round % 2 ? 3000 : 0); /* slow fills: faults in flight */
		struct umapfs_map *m = map_file(path, 0, 0, 64 * KiB, 1 * MiB, 0, &seam);
		atomic_bool unmapping = false;
		struct fl_arg a[3];
		pthread_t t[3];
		for (int i = 0; i < 3; i++) {
			a[i] = (struct fl_arg){ umapfs_map_addr(m), 16 * MiB, &unmapping, 0, 0, 0 };
			pthread_create(&t[i], NULL, faulter, &a[i]);
		}
		/* every thread has read something, and faults are in flight */
		for (int w = 0; w < 5000; w++) {
			if (atomic_load(&a[0].verified) && atomic_load(&a[1].verified) &&
			    atomic_load(&a[2].verified))
				break;
			usleep(1000);
		}
		usleep(10000);
		atomic_store(&unmapping, true);
		cr_assert_eq(umapfs_map_unmap(m), 0);
		for (int i = 0; i < 3; i++) {
			pthread_join(t[i], NULL);
			cr_assert_eq(a[i].bad, 0);
			cr_assert_gt(a[i].verified, 0);
		}
	}
	atomic_store(&slow_us, 0);
	unlink(path);
}

/* ---- many mappings, prefetch ---- */

Test(uffd, two_thousand_mappings, .timeout = 90)
{
	char path[64];
	mkpat(path, sizeof(path), 4 * MiB, 7);
	struct umapfs_engine_config ec;
	umapfs_engine_config_init(&ec);
	ec.page_size = 16 * KiB;
	ec.buffer_size = 8 * MiB;
	struct umapfs_engine *e;
	cr_assert_eq(umapfs_engine_create(&ec, &e), 0);
	enum { N = 2500 };
	struct umapfs_map **ms = calloc(N, sizeof(*ms));
	struct umapfs_map_config c;
	umapfs_map_config_init(&c);
	c.engine = e;
	c.page_size = 16 * KiB;
	for (int i = 0; i < N; i++) {
		uint64_t off = (uint64_t)i * 1500;
		int r = umapfs_map_file(path, off, 32 * KiB, &c, &ms[i]);
		cr_assert_eq(r, 0, "mapping %d: %s", i, strerror(-r));
	}
	for (int i = N - 1; i >= 0; i--) {
		const unsigned char *b = umapfs_map_addr(ms[i]);
		uint64_t off = (uint64_t)i * 1500;
		cr_assert_eq(b[0], pb(7, off), "mapping %d", i);
		cr_assert_eq(b[20000], pb(7, off + 20000), "mapping %d", i);
		cr_assert_eq(umapfs_map_find(b + 100), ms[i]);
	}
	for (int i = 0; i < N; i++)
		cr_assert_eq(umapfs_map_unmap(ms[i]), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	free(ms);
	unlink(path);
}

static _Atomic int pf_status = 1;

static void pf_cb(void *arg, struct umapfs_map *m, uint64_t off, uint64_t len, int status)
{
	(void)m, (void)off, (void)len;
	atomic_store((_Atomic int *)arg, status);
}

Test(uffd, prefetch_notifies, .timeout = 30)
{
	char path[64];
	mkpat(path, sizeof(path), 8 * MiB, 8);
	struct umapfs_engine_config ec;
	umapfs_engine_config_init(&ec);
	ec.page_size = 256 * KiB;
	ec.buffer_size = 4 * MiB;
	struct umapfs_engine *e;
	cr_assert_eq(umapfs_engine_create(&ec, &e), 0);
	struct umapfs_map_config c;
	umapfs_map_config_init(&c);
	c.engine = e;
	c.page_size = 256 * KiB;
	struct umapfs_map *m;
	cr_assert_eq(umapfs_map_file(path, 0, 0, &c, &m), 0);
	int efd = eventfd(0, EFD_CLOEXEC);
	cr_assert_eq(umapfs_map_prefetch(m, 1 * MiB, 2 * MiB, pf_cb, (void *)&pf_status, efd), 0);
	uint64_t n;
	cr_assert_eq(read(efd, &n, sizeof(n)), (ssize_t)sizeof(n));
	cr_assert_eq(n, 1);
	cr_assert_eq(atomic_load(&pf_status), 0);
	struct umapfs_stats before, after;
	umapfs_engine_stats(e, &before);
	const unsigned char *b = umapfs_map_addr(m);
	for (uint64_t o = 1 * MiB; o < 3 * MiB; o += 4096)
		cr_assert_eq(b[o], pb(8, o));
	umapfs_engine_stats(e, &after);
	cr_assert_eq(after.fills, before.fills, "prefetched pages were read again");
	/* the prefetched pages were installed in the mapping: no fault at all */
	struct umapfs_map_stats ms;
	umapfs_map_stats(m, &ms);
	cr_assert_eq(ms.faults, 0, "%llu faults after prefetch", (unsigned long long)ms.faults);
	/* larger than the buffer: completes with -ENOSPC */
	cr_assert_eq(umapfs_map_prefetch(m, 0, 8 * MiB, pf_cb, (void *)&pf_status, efd), 0);
	cr_assert_eq(read(efd, &n, sizeof(n)), (ssize_t)sizeof(n));
	cr_assert_eq(atomic_load(&pf_status), -ENOSPC);
	cr_assert_eq(umapfs_map_prefetch(m, 9 * MiB, 1, NULL, NULL, -1), -EINVAL);
	close(efd);
	cr_assert_eq(umapfs_map_unmap(m), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	unlink(path);
}

/* ---- views other than a plain file ---- */

static int ops_fill(void *arg, uint64_t off, void *buf, size_t len)
{
	(void)arg;
	if (off == 5 * 16384)
		return -EIO; /* one bad page */
	for (size_t i = 0; i < len; i++)
		((unsigned char *)buf)[i] = (unsigned char)((off + i) * 7 + 3);
	return 0;
}

/* A computed view (a plugin's transform) and a stitched FILE + MEMORY + ZERO view. */
Test(uffd, plugin_and_extent_views, .timeout = 30)
{
	char path[64];
	mkpat(path, sizeof(path), 1 * MiB, 9);
	catch_signals();
	struct umapfs_engine_config ec;
	umapfs_engine_config_init(&ec);
	ec.page_size = 16 * KiB;
	ec.buffer_size = 256 * KiB;
	struct umapfs_engine *e;
	cr_assert_eq(umapfs_engine_create(&ec, &e), 0);

	struct umapfs_view_ops ops = { .struct_size = sizeof(ops), .fill = ops_fill };
	struct umapfs_view_desc d;
	umapfs_view_desc_init(&d);
	d.name = "computed";
	d.size = 2 * MiB + 123;
	d.ops = &ops;
	struct umapfs_view *v;
	cr_assert_eq(umapfs_view_create(e, &d, &v), 0);
	struct umapfs_map *m;
	cr_assert_eq(umapfs_map_view(v, NULL, &m), 0);
	volatile unsigned char *b = umapfs_map_addr(m);
	for (uint64_t o = 0; o < d.size; o += 999)
		if (o / (16 * KiB) != 5)
			cr_assert_eq(b[o], (unsigned char)(o * 7 + 3), "offset %llu", (unsigned long long)o);
	volatile int got = 0;
	jb_armed = 1;
	if (sigsetjmp(jb, 1) == 0)
		(void)b[5 * 16384 + 1];
	else
		got = 1;
	jb_armed = 0;
	cr_assert_eq(got, 1);
	uint64_t off;
	cr_assert_eq(umapfs_map_last_error(m, &off), -EIO);
	cr_assert_eq(off, 5 * 16384);
	cr_assert_eq(umapfs_map_unmap(m), 0);
	cr_assert_eq(umapfs_view_destroy(v), 0);

	static const char hdr[] = "HEADER--synthesized bytes before the file's";
	struct umapfs_extent x[3] = {
		{ .kind = UMAPFS_EXTENT_MEMORY, .length = sizeof(hdr), .data = hdr },
		{ .kind = UMAPFS_EXTENT_FILE, .path = path, .file_offset = 4096, .length = 500000 },
		{ .kind = UMAPFS_EXTENT_ZERO, .length = 70000 },
	};
	umapfs_view_desc_init(&d);
	d.name = "stitched";
	d.size = sizeof(hdr) + 500000 + 70000;
	d.extents = x;
	d.n_extents = 3;
	cr_assert_eq(umapfs_view_create(e, &d, &v), 0);
	cr_assert_eq(umapfs_map_view(v, NULL, &m), 0);
	b = umapfs_map_addr(m);
	cr_assert(memcmp((const void *)b, hdr, sizeof(hdr)) == 0);
	for (uint64_t o = 0; o < 500000; o += 777)
		cr_assert_eq(b[sizeof(hdr) + o], pb(9, 4096 + o));
	for (uint64_t o = 0; o < 70000; o += 1000)
		cr_assert_eq(b[sizeof(hdr) + 500000 + o], 0);
	cr_assert_eq(umapfs_map_unmap(m), 0);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	unlink(path);
}

Test(uffd, prefetch_writable_then_write, .timeout = 30)
{
	char path[64];
	uint64_t size = 2 * MiB;
	mkpat(path, sizeof(path), size, 10);
	struct umapfs_map *m = map_file(path, 0, 0, 64 * KiB, 1 * MiB, UMAPFS_MAP_WRITE, NULL);
	int efd = eventfd(0, EFD_CLOEXEC);
	cr_assert_eq(umapfs_map_prefetch(m, 0, 512 * KiB, NULL, NULL, efd), 0);
	uint64_t n;
	cr_assert_eq(read(efd, &n, sizeof(n)), (ssize_t)sizeof(n));
	unsigned char *b = umapfs_map_addr(m);
	for (uint64_t o = 0; o < 512 * KiB; o += 4096) {
		cr_assert_eq(b[o], pb(10, o));
		b[o] = (unsigned char)~pb(10, o);
	}
	struct umapfs_map_stats ms;
	umapfs_map_stats(m, &ms);
	cr_assert_eq(ms.faults, 0);
	cr_assert_eq(ms.wp_faults, 8, "wp %llu faults %llu", (unsigned long long)ms.wp_faults, (unsigned long long)ms.faults);
	cr_assert_eq(umapfs_map_unmap(m), 0);
	unsigned char *got = malloc(size);
	pread_all(path, got, size, 0);
	for (uint64_t o = 0; o < size; o++)
		cr_assert_eq(got[o], o < 512 * KiB && o % 4096 == 0 ? (unsigned char)~pb(10, o) : pb(10, o));
	free(got);
	close(efd);
	unlink(path);
}

/* ---- concurrent writers under heavy eviction ---- */

struct wr_arg {
	unsigned char *base, *want;
	uint64_t size;
	unsigned id;
};

static void *writer(void *p)
{
	struct wr_arg *a = p;
	uint64_t x = 0x2545F4914F6CDD1Dull * (a->id + 1);
	for (int i = 0; i < 2000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t o = (x % (a->size / 4)) * 4 + a->id; /* this thread's bytes only */
		if (i & 1) {
			unsigned char c = a->base[o];
			cr_assert_eq(c, a->want[o], "thread %u offset %llu", a->id, (unsigned long long)o);
		}
		a->base[o] = a->want[o] = (unsigned char)(x >> 40);
	}
	return NULL;
}

Test(uffd, concurrent_writers_evicting, .timeout = 90)
{
	char path[64];
	uint64_t size = 4 * MiB;
	mkpat(path, sizeof(path), size, 13);
	unsigned char *want = malloc(size), *got = malloc(size);
	for (uint64_t i = 0; i < size; i++)
		want[i] = pb(13, i);
	/* four 64 KiB pages for four writers: nearly every access evicts a written page */
	struct umapfs_map *m = map_file(path, 0, 0, 64 * KiB, 256 * KiB, UMAPFS_MAP_WRITE, NULL);
	struct wr_arg a[4];
	pthread_t t[4];
	for (unsigned i = 0; i < 4; i++) {
		a[i] = (struct wr_arg){ umapfs_map_addr(m), want, size, i };
		pthread_create(&t[i], NULL, writer, &a[i]);
	}
	for (unsigned i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_assert(memcmp(umapfs_map_addr(m), want, size) == 0, "mapping differs");
	struct umapfs_map_stats st;
	umapfs_map_stats(m, &st);
	cr_log_info("faults %llu wp %llu zaps %llu copybacks %llu", (unsigned long long)st.faults,
		    (unsigned long long)st.wp_faults, (unsigned long long)st.zaps,
		    (unsigned long long)st.copybacks);
	cr_assert_gt(st.copybacks, 50);
	cr_assert_eq(umapfs_map_unmap(m), 0);
	pread_all(path, got, size, 0);
	for (uint64_t o = 0; o < size; o++)
		if (got[o] != want[o])
			cr_assert_fail("file byte %llu: %u, want %u", (unsigned long long)o, got[o], want[o]);
	free(want);
	free(got);
	unlink(path);
}
