/*
 * Prefetch: completion through a callback and through an eventfd, pages
 * resident afterwards (reads are hits), a prefetch larger than the buffer
 * completes with -ENOSPC, a failing page completes with its error, a view
 * destroyed with prefetches queued does not hang, and a page of a batch is
 * readable before the batch's other reads have landed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "eutil.h"

#define PG 65536

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ncb, last_status = 12345;
static uint64_t last_off, last_len;

static void on_done(void *arg, struct umapfs_view *v, uint64_t off, uint64_t len, int status)
{
	(void)v;
	pthread_mutex_lock(&mu);
	ncb++;
	last_status = status;
	last_off = off;
	last_len = len;
	*(int *)arg += 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void wait_cb(int n)
{
	pthread_mutex_lock(&mu);
	while (ncb < n)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

struct pfx {
	struct tdir d;
	struct umapfs_engine *e;
	struct umapfs_view *v;
	struct umapfs_sys sys;
};

static atomic_bool fail_reads;
static int pf_complete(void *arg, int is_write, int fd, uint64_t off, size_t len, int res)
{
	(void)arg, (void)fd, (void)off, (void)len;
	return !is_write && atomic_load(&fail_reads) ? -EIO : res;
}

/* The seam's completion hook for the next pfx_init (the engine copies the seam). */
static int (*pfx_complete)(void *, int, int, uint64_t, size_t, int) = pf_complete;

static void pfx_init(struct pfx *f, unsigned buffer_pages)
{
	td_init(&f->d, "/var/tmp");
	make_file(td_path(&f->d, "f"), 32 * PG, 4);
	memset(&f->sys, 0, sizeof(f->sys));
	f->sys.complete = pfx_complete;
	struct umapfs_engine_config c;
	umapfs_engine_config_init(&c);
	c.page_size = PG;
	c.buffer_size = (uint64_t)buffer_pages * PG;
	c.sys = &f->sys;
	c.log = tlog;
	cr_assert_eq(umapfs_engine_create(&c, &f->e), 0);
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = td_path(&f->d, "f"), .length = 32 * PG };
	struct umapfs_view_desc vd;
	umapfs_view_desc_init(&vd);
	vd.size = 32 * PG;
	vd.extents = &x;
	vd.n_extents = 1;
	cr_assert_eq(umapfs_view_create(f->e, &vd, &f->v), 0);
}

static void pfx_fini(struct pfx *f)
{
	cr_assert_eq(umapfs_view_destroy(f->v), 0);
	cr_assert_eq(umapfs_engine_destroy(f->e), 0);
	td_cleanup(&f->d);
}

Test(engine, prefetch_callback_then_all_hits, .timeout = 30)
{
	struct pfx f;
	int mine = 0;
	pfx_init(&f, 16);
	cr_assert_eq(umapfs_view_prefetch(f.v, 3 * PG + 5, 8 * PG, on_done, &mine, -1), 0);
	wait_cb(1);
	cr_assert_eq(mine, 1);
	cr_assert_eq(last_status, 0);
	cr_assert_eq(last_off, 3 * PG + 5);
	cr_assert_eq(last_len, 8 * PG);
	struct umapfs_stats st = stats_of(f.e);
	cr_assert_eq(st.prefetches, 1);
	cr_assert_eq(st.fills, 9, "pages 3..11");
	unsigned char *b = malloc(8 * PG), *want = malloc(8 * PG);
	cr_assert_eq(umapfs_view_read(f.v, b, 8 * PG, 3 * PG + 5), 8 * PG);
	pat_fill(want, 8 * PG, 4, 3 * PG + 5);
	cr_assert(memcmp(b, want, 8 * PG) == 0);
	struct umapfs_stats st2 = stats_of(f.e);
	cr_assert_eq(st2.fills, 9, "no more fills: prefetched pages are resident");
	cr_assert_eq(st2.misses, st.misses);
	free(b);
	free(want);
	pfx_fini(&f);
}

Test(engine, prefetch_eventfd, .timeout = 30)
{
	struct pfx f;
	pfx_init(&f, 16);
	int efd = eventfd(0, EFD_CLOEXEC);
	cr_assert_geq(efd, 0);
	cr_assert_eq(umapfs_view_prefetch(f.v, 0, 4 * PG, NULL, NULL, efd), 0);
	cr_assert_eq(umapfs_view_prefetch(f.v, 20 * PG, 4 * PG, NULL, NULL, efd), 0);
	uint64_t total = 0;
	while (total < 2) {
		struct pollfd p = { .fd = efd, .events = POLLIN };
		cr_assert_eq(poll(&p, 1, 10000), 1, "eventfd not signalled");
		uint64_t n;
		cr_assert_eq(read(efd, &n, 8), 8);
		total += n;
	}
	cr_assert_eq(total, 2);
	cr_assert_eq(stats_of(f.e).fills, 8);
	close(efd);
	pfx_fini(&f);
}

Test(engine, prefetch_larger_than_buffer_is_enospc, .timeout = 30)
{
	struct pfx f;
	int mine = 0;
	pfx_init(&f, 4);
	cr_assert_eq(umapfs_view_prefetch(f.v, 0, 5 * PG, on_done, &mine, -1), 0);
	wait_cb(1);
	cr_assert_eq(last_status, -ENOSPC);
	cr_assert_eq(umapfs_view_prefetch(f.v, 0, 4 * PG, on_done, &mine, -1), 0);
	wait_cb(2);
	cr_assert_eq(last_status, 0);
	cr_assert_eq(umapfs_view_prefetch(f.v, 33 * PG, 1, on_done, &mine, -1), -EINVAL);
	cr_assert_leq(stats_of(f.e).resident_bytes, 4 * PG);
	pfx_fini(&f);
}

Test(engine, prefetch_error_status, .timeout = 30)
{
	struct pfx f;
	int mine = 0;
	pfx_init(&f, 8);
	atomic_store(&fail_reads, true);
	cr_assert_eq(umapfs_view_prefetch(f.v, 0, 3 * PG, on_done, &mine, -1), 0);
	wait_cb(1);
	cr_assert_eq(last_status, -EIO);
	atomic_store(&fail_reads, false);
	cr_assert_eq(stats_of(f.e).resident_bytes, 0);
	cr_assert_eq(umapfs_view_prefetch(f.v, 0, 3 * PG, on_done, &mine, -1), 0);
	wait_cb(2);
	cr_assert_eq(last_status, 0);
	pfx_fini(&f);
}

Test(engine, destroy_with_prefetches_queued, .timeout = 30)
{
	struct pfx f;
	int mine = 0;
	pfx_init(&f, 8);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(umapfs_view_prefetch(f.v, (uint64_t)(i % 28) * PG, 4 * PG, on_done, &mine, -1), 0);
	cr_assert_eq(umapfs_view_destroy(f.v), 0);
	/* every request completed (done or cancelled) before destroy returned */
	cr_assert_eq(mine, 50);
	cr_assert_eq(umapfs_engine_destroy(f.e), 0);
	td_cleanup(&f.d);
}

/*
 * A page of a prefetch batch is published as soon as its own read lands: a
 * reader of the first page does not wait for the rest of the batch.  The
 * seam holds the read of the batch's last page until the reader is done (or
 * 10 s passed); with synchronous I/O the pieces complete in order, so this
 * does not depend on the order of io_uring completions.
 */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static bool hold_released, hold_timed_out, hold_seen;
static int hold_complete(void *arg, int is_write, int fd, uint64_t off, size_t len, int res)
{
	(void)arg, (void)fd, (void)len;
	if (is_write || off != 7 * PG)
		return res;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&hold_mu);
	hold_seen = true;
	pthread_cond_broadcast(&hold_cv);
	while (!hold_released && !hold_timed_out)
		if (pthread_cond_timedwait(&hold_cv, &hold_mu, &until) == ETIMEDOUT)
			hold_timed_out = true;
	pthread_mutex_unlock(&hold_mu);
	return res;
}

Test(engine, prefetched_page_is_readable_before_its_batch_ends, .timeout = 60)
{
	setenv("UMAPFS_NO_IO_URING", "1", 1);
	struct pfx f;
	int mine = 0;
	pfx_complete = hold_complete;
	pfx_init(&f, 16);
	cr_assert_eq(umapfs_view_prefetch(f.v, 0, 8 * PG, on_done, &mine, -1), 0);
	pthread_mutex_lock(&hold_mu);
	while (!hold_seen && !hold_timed_out)
		pthread_cond_wait(&hold_cv, &hold_mu);
	pthread_mutex_unlock(&hold_mu);

	unsigned char *b = malloc(PG), *want = malloc(PG);
	cr_assert_eq(umapfs_view_read(f.v, b, PG, 0), PG);
	pat_fill(want, PG, 4, 0);
	cr_assert(memcmp(b, want, PG) == 0);
	pthread_mutex_lock(&hold_mu);
	bool late = hold_timed_out;
	hold_released = true;
	pthread_cond_broadcast(&hold_cv);
	pthread_mutex_unlock(&hold_mu);
	cr_assert(!late, "page 0 was only published when the batch's last read completed");
	wait_cb(1);
	cr_assert_eq(last_status, 0);
	cr_assert_eq(stats_of(f.e).fills, 8);
	free(b);
	free(want);
	pfx_fini(&f);
}
