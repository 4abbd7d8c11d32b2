/*
 * Concurrency: the budget holds under random access from several threads
 * (checked by a sampler thread and at every fill, not assumed), two
 * readers missing one page cause exactly one fill (counted by the seam's
 * complete hook and by the stats), and readers of resident pages do not
 * wait for a slow fill of another page.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eutil.h"

static struct umapfs_engine *g_e;
static uint64_t g_budget;
static atomic_int over_budget, bad_bytes, read_errors;
static atomic_bool stop;
static atomic_uint_fast64_t max_seen;

static void note_resident(void)
{
	struct umapfs_stats st;
	umapfs_engine_stats(g_e, &st);
	uint64_t m = atomic_load(&max_seen);
	while (st.resident_bytes > m && !atomic_compare_exchange_weak(&max_seen, &m, st.resident_bytes))
		;
	if (st.resident_bytes > g_budget)
		atomic_fetch_add(&over_budget, 1);
}

static void on_filled(void *arg, struct umapfs_view *v, uint64_t off, const void *data, size_t len)
{
	(void)arg, (void)v, (void)off, (void)data, (void)len;
	note_resident();
}

static void *sampler(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop))
		note_resident();
	return NULL;
}

struct worker {
	struct umapfs_view *v;
	uint64_t size;
	unsigned seed;
	int iters;
};

static void *reader(void *arg)
{
	struct worker *w = arg;
	unsigned char *buf = malloc(200000), *want = malloc(200000);
	unsigned s = w->seed;
	for (int i = 0; i < w->iters; i++) {
		uint64_t off = (uint64_t)rand_r(&s) % w->size;
		size_t n = (size_t)(rand_r(&s) % 4 == 0 ? rand_r(&s) % 200000 : rand_r(&s) % 5000) + 1;
		if (n > w->size - off)
			n = (size_t)(w->size - off);
		ssize_t r = umapfs_view_read(w->v, buf, n, off);
		if (r != (ssize_t)n) {
			atomic_fetch_add(&read_errors, 1);
			continue;
		}
		pat_fill(want, n, 21, off);
		if (memcmp(buf, want, n))
			atomic_fetch_add(&bad_bytes, 1);
	}
	free(buf);
	free(want);
	return NULL;
}

static void budget_case(int policy, uint64_t page, unsigned budget_pages)
{
	struct tdir d;
	td_init(&d, "/var/tmp");
	uint64_t size = 4 << 20;
	make_file(td_path(&d, "f"), size, 21);
	g_budget = budget_pages * page;
	g_e = mk_engine(page, g_budget, policy);
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = td_path(&d, "f"), .length = size };
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.size = size;
	vd.extents = &x;
	vd.n_extents = 1;
	cr_assert_eq(umapfs_view_create(g_e, &vd, &v), 0);
	struct umapfs_view_hooks h = { .struct_size = sizeof(h), .filled = on_filled };
	umapfs_view_set_hooks(v, &h);

	pthread_t smp, th[6];
	struct worker w[6];
	pthread_create(&smp, NULL, sampler, NULL);
	for (int i = 0; i < 6; i++) {
		w[i] = (struct worker){ .v = v, .size = size, .seed = (unsigned)i * 77 + 1, .iters = 400 };
		pthread_create(&th[i], NULL, reader, &w[i]);
	}
	/* and prefetches racing with the readers */
	for (int i = 0; i < 20; i++) {
		umapfs_view_prefetch(v, (uint64_t)(i * 7 % 64) * 65536, 2 * page, NULL, NULL, -1);
		usleep(1000);
	}
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	atomic_store(&stop, true);
	pthread_join(smp, NULL);

	struct umapfs_stats st = stats_of(g_e);
	cr_assert_eq(atomic_load(&read_errors), 0, "reads failed; log: %s", tlog_text());
	cr_assert_eq(atomic_load(&bad_bytes), 0, "wrong bytes read");
	cr_assert_eq(atomic_load(&over_budget), 0, "resident bytes exceeded the budget");
	cr_assert_leq(atomic_load(&max_seen), g_budget);
	cr_assert_gt(st.evictions, 0, "the test must actually evict");
	cr_assert_leq(st.resident_bytes, g_budget);
	cr_assert_eq(st.fill_errors, 0);
	cr_assert_gt(st.fill_ns_p50, 0);
	cr_assert_leq(st.fill_ns_p50, st.fill_ns_p90);
	cr_assert_leq(st.fill_ns_p90, st.fill_ns_p99);
	cr_assert_leq(st.fill_ns_p99, st.fill_ns_max);
	umapfs_view_set_hooks(v, NULL);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(g_e), 0);
	td_cleanup(&d);
}

Test(engine, budget_holds_6_threads_fifo_4k, .timeout = 60) { budget_case(UMAPFS_POLICY_FIFO, 4096, 6); }
Test(engine, budget_holds_6_threads_clock_16k, .timeout = 60) { budget_case(UMAPFS_POLICY_CLOCK, 16384, 9); }
Test(engine, budget_holds_6_threads_lru_64k, .timeout = 60) { budget_case(UMAPFS_POLICY_LRU, 65536, 8); }

/* ---- one fill per missing page ---- */

static atomic_int reads_at[64];
static atomic_int reads_total;

static int slow_complete(void *arg, int is_write, int fd, uint64_t off, size_t len, int res)
{
	(void)arg, (void)fd, (void)len;
	if (!is_write) {
		usleep(3000); /* keep the fill in flight while other readers arrive */
		if (off / 16384 < 64)
			atomic_fetch_add(&reads_at[off / 16384], 1);
		atomic_fetch_add(&reads_total, 1);
	}
	return res;
}

struct same {
	struct umapfs_view *v;
	unsigned seed;
	pthread_barrier_t *bar;
};

static void *same_reader(void *arg)
{
	struct same *s = arg;
	unsigned order[32];
	for (unsigned i = 0; i < 32; i++)
		order[i] = i;
	for (unsigned i = 31; i > 0; i--) {
		unsigned j = (unsigned)rand_r(&s->seed) % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	pthread_barrier_wait(s->bar);
	for (unsigned i = 0; i < 32; i++) {
		unsigned char b[100], want[100];
		uint64_t off = (uint64_t)order[i] * 16384 + 500;
		if (umapfs_view_read(s->v, b, 100, off) != 100) {
			atomic_fetch_add(&read_errors, 1);
			continue;
		}
		pat_fill(want, 100, 5, off);
		if (memcmp(b, want, 100))
			atomic_fetch_add(&bad_bytes, 1);
	}
	return NULL;
}

Test(engine, one_fill_per_missing_page, .timeout = 60)
{
	struct tdir d;
	td_init(&d, "/var/tmp");
	make_file(td_path(&d, "f"), 32 * 16384, 5);
	struct umapfs_sys sys = { .complete = slow_complete };
	struct umapfs_engine_config c;
	struct umapfs_engine *e;
	umapfs_engine_config_init(&c);
	c.page_size = 16384;
	c.buffer_size = 64 * 16384;
	c.sys = &sys;
	c.log = tlog;
	cr_assert_eq(umapfs_engine_create(&c, &e), 0);
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = td_path(&d, "f"), .length = 32 * 16384 };
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.size = 32 * 16384;
	vd.extents = &x;
	vd.n_extents = 1;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), 0);

	enum { T = 8 };
	pthread_t th[T];
	struct same s[T];
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, T);
	for (int i = 0; i < T; i++) {
		s[i] = (struct same){ .v = v, .seed = (unsigned)(i % 2) + 1, .bar = &bar };
		pthread_create(&th[i], NULL, same_reader, &s[i]);
	}
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&read_errors), 0);
	cr_assert_eq(atomic_load(&bad_bytes), 0);
	for (int p = 0; p < 32; p++)
		cr_assert_eq(atomic_load(&reads_at[p]), 1, "page %d read %d times", p,
			     atomic_load(&reads_at[p]));
	cr_assert_eq(atomic_load(&reads_total), 32);
	struct umapfs_stats st = stats_of(e);
	cr_assert_eq(st.fills, 32);
	cr_assert_eq(st.hits + st.misses, T * 32);
	cr_assert_geq(st.misses, 32);
	cr_assert_gt(st.misses, 32, "some readers must have waited on an in-flight fill");
	cr_assert_eq(st.bytes_read, 32 * 16384);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	pthread_barrier_destroy(&bar);
	td_cleanup(&d);
}

/* ---- hits never wait for another page's fill ---- */

static atomic_bool hold_fill;

static int blocking_fill(void *arg, uint64_t off, void *buf, size_t len)
{
	(void)arg;
	if (off == 4096 * 7)
		while (atomic_load(&hold_fill))
			usleep(1000);
	memset(buf, (int)(off / 4096), len);
	return 0;
}

static void *fill_7(void *arg)
{
	unsigned char b[8];
	if (umapfs_view_read(arg, b, 8, 7 * 4096) != 8 || b[0] != 7)
		atomic_fetch_add(&bad_bytes, 1);
	return NULL;
}

Test(engine, hits_do_not_wait_for_other_fills, .timeout = 30)
{
	struct umapfs_engine *e = mk_engine(4096, 16 * 4096, UMAPFS_POLICY_FIFO);
	struct umapfs_view_ops ops = { .struct_size = sizeof(ops), .fill = blocking_fill };
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.size = 16 * 4096;
	vd.ops = &ops;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), 0);
	unsigned char b[8];
	cr_assert_eq(umapfs_view_read(v, b, 8, 3 * 4096), 8);
	atomic_store(&hold_fill, true);
	pthread_t t;
	pthread_create(&t, NULL, fill_7, v);
	usleep(20000); /* page 7's fill is now stuck */
	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(umapfs_view_read(v, b, 8, 3 * 4096), 8);
		cr_assert_eq(b[0], 3);
	}
	/* a different missing page fills while page 7 is stuck */
	cr_assert_eq(umapfs_view_read(v, b, 8, 9 * 4096), 8);
	cr_assert_eq(b[0], 9);
	atomic_store(&hold_fill, false);
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&bad_bytes), 0);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
}

/* ---- concurrent writers sharing pages, evictions and flushes racing ---- */

#define WSIZE (1u << 20)
#define STRIPE 1000u
static unsigned char wmodel[WSIZE];

struct wjob {
	struct umapfs_view *v;
	unsigned t;
};

static void *striped_writer(void *arg)
{
	struct wjob *j = arg;
	unsigned s = j->t + 100;
	unsigned char b[STRIPE];
	for (int i = 0; i < 600; i++) {
		/* a random stripe of this thread's: stripes t, t+4, t+8, ... */
		uint64_t stripe = ((uint64_t)rand_r(&s) % (WSIZE / STRIPE / 4)) * 4 + j->t;
		uint64_t off = stripe * STRIPE;
		pat_fill(b, STRIPE, 500 + (uint64_t)i * 4 + j->t, off);
		if (umapfs_view_write(j->v, b, STRIPE, off) != STRIPE) {
			atomic_fetch_add(&read_errors, 1);
			continue;
		}
		memcpy(wmodel + off, b, STRIPE); /* stripes are this thread's alone */
	}
	return NULL;
}

static void *flusher(void *arg)
{
	while (!atomic_load(&stop)) {
		if (umapfs_view_flush(arg) != 0)
			atomic_fetch_add(&read_errors, 1);
		usleep(2000);
	}
	return NULL;
}

Test(engine, concurrent_writers_evictions_and_flushes, .timeout = 60)
{
	struct tdir d;
	td_init(&d, "/var/tmp");
	make_file(td_path(&d, "f"), WSIZE + 8192, 9);
	file_read(td_path(&d, "f"), wmodel, WSIZE, 4096 + 123);
	g_budget = 6 * 16384;
	g_e = mk_engine(16384, g_budget, UMAPFS_POLICY_CLOCK);
	/* an unaligned extent, so write-back mixes O_DIRECT middles and buffered edges */
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = td_path(&d, "f"),
				   .file_offset = 4096 + 123, .length = WSIZE };
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.size = WSIZE;
	vd.extents = &x;
	vd.n_extents = 1;
	vd.flags = UMAPFS_VIEW_WRITABLE;
	cr_assert_eq(umapfs_view_create(g_e, &vd, &v), 0);
	struct umapfs_view_hooks h = { .struct_size = sizeof(h), .filled = on_filled };
	umapfs_view_set_hooks(v, &h);
	pthread_t th[4], fl;
	struct wjob j[4];
	pthread_create(&fl, NULL, flusher, v);
	for (unsigned i = 0; i < 4; i++) {
		j[i] = (struct wjob){ .v = v, .t = i };
		pthread_create(&th[i], NULL, striped_writer, &j[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	atomic_store(&stop, true);
	pthread_join(fl, NULL);
	cr_assert_eq(atomic_load(&read_errors), 0, "%s", tlog_text());
	cr_assert_eq(atomic_load(&over_budget), 0);
	struct umapfs_stats st = stats_of(g_e);
	cr_assert_gt(st.evictions, 0);
	cr_assert_gt(st.writebacks, 0);
	cr_assert_eq(st.writeback_errors, 0);
	cr_assert_eq(umapfs_view_flush(v), 0);
	unsigned char *got = malloc(WSIZE);
	file_read(td_path(&d, "f"), got, WSIZE, 4096 + 123);
	for (size_t i = 0; i < WSIZE; i++)
		cr_assert_eq(got[i], wmodel[i], "file byte %zu", i);
	cr_assert_eq(umapfs_view_read(v, got, WSIZE, 0), WSIZE);
	cr_assert(memcmp(got, wmodel, WSIZE) == 0);
	free(got);
	umapfs_view_set_hooks(v, NULL);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(g_e), 0);
	td_cleanup(&d);
}
