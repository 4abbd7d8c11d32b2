/*
 * Replacement policies: FIFO evicts by fill order regardless of hits,
 * CLOCK gives referenced pages a second chance, LRU evicts the least
 * recently used page.  The victims are observed through the `evicting`
 * hook and the counters through umapfs_engine_stats; FIFO and LRU are also
 * checked against a reference model over a random access sequence.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "eutil.h"

#define PG 4096
#define NPAGES 64

static uint64_t evicted[4096];
static size_t n_evicted;

static int on_evict(void *arg, struct umapfs_view *v, uint64_t off, void *data, size_t len)
{
	(void)arg, (void)v, (void)data, (void)len;
	if (n_evicted < 4096)
		evicted[n_evicted++] = off / PG;
	return 0;
}

struct fx {
	struct tdir d;
	struct umapfs_engine *e;
	struct umapfs_view *v;
};

static void fx_init(struct fx *f, int policy, unsigned buffer_pages)
{
	td_init(&f->d, "/var/tmp");
	make_file(td_path(&f->d, "f"), NPAGES * PG, 3);
	f->e = mk_engine(PG, (uint64_t)buffer_pages * PG, policy);
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = td_path(&f->d, "f"),
				   .length = NPAGES * PG };
	struct umapfs_view_desc vd;
	umapfs_view_desc_init(&vd);
	vd.name = "p";
	vd.size = NPAGES * PG;
	vd.extents = &x;
	vd.n_extents = 1;
	cr_assert_eq(umapfs_view_create(f->e, &vd, &f->v), 0);
	struct umapfs_view_hooks h = { .struct_size = sizeof(h), .evicting = on_evict };
	cr_assert_eq(umapfs_view_set_hooks(f->v, &h), 0);
	n_evicted = 0;
}

static void fx_fini(struct fx *f)
{
	cr_assert_eq(umapfs_view_set_hooks(f->v, NULL), 0);
	cr_assert_eq(umapfs_view_destroy(f->v), 0);
	cr_assert_eq(umapfs_engine_destroy(f->e), 0);
	td_cleanup(&f->d);
}

static void rd(struct fx *f, unsigned page)
{
	unsigned char b[64], want[64];
	cr_assert_eq(umapfs_view_read(f->v, b, sizeof(b), (uint64_t)page * PG + 100), 64);
	pat_fill(want, 64, 3, (uint64_t)page * PG + 100);
	cr_assert(memcmp(b, want, 64) == 0, "page %u bytes", page);
}

/* Fill 0..3 into a 4-page buffer, hit 2 then 0, then miss 4, 5, 6. */
static void scenario(struct fx *f)
{
	for (unsigned p = 0; p < 4; p++)
		rd(f, p);
	rd(f, 2);
	rd(f, 0);
	rd(f, 4);
	rd(f, 5);
	rd(f, 6);
	struct umapfs_stats st = stats_of(f->e);
	cr_assert_eq(st.hits, 2);
	cr_assert_eq(st.misses, 7);
	cr_assert_eq(st.fills, 7);
	cr_assert_eq(st.evictions, 3);
	cr_assert_eq(st.resident_bytes, 4 * PG);
	cr_assert_eq(n_evicted, 3);
}

Test(engine, fifo_evicts_in_fill_order)
{
	struct fx f;
	fx_init(&f, UMAPFS_POLICY_FIFO, 4);
	scenario(&f);
	cr_assert_eq(evicted[0], 0);
	cr_assert_eq(evicted[1], 1);
	cr_assert_eq(evicted[2], 2);
	fx_fini(&f);
}

Test(engine, clock_gives_a_second_chance)
{
	struct fx f;
	fx_init(&f, UMAPFS_POLICY_CLOCK, 4);
	scenario(&f);
	/* hand at 0 (referenced: cleared) -> 1; then 2 (referenced) -> 3; then 0 */
	cr_assert_eq(evicted[0], 1);
	cr_assert_eq(evicted[1], 3);
	cr_assert_eq(evicted[2], 0);
	fx_fini(&f);
}

Test(engine, lru_evicts_least_recently_used)
{
	struct fx f;
	fx_init(&f, UMAPFS_POLICY_LRU, 4);
	scenario(&f);
	/* recency after the hits: 1 3 2 0 */
	cr_assert_eq(evicted[0], 1);
	cr_assert_eq(evicted[1], 3);
	cr_assert_eq(evicted[2], 2);
	fx_fini(&f);
}

/* Reference models over one random sequence: the evicted pages must match. */
static void model_check(int policy)
{
	enum { BUF = 8, N = 3000 };
	struct fx f;
	fx_init(&f, policy, BUF);
	int resident[BUF], nres = 0; /* ordered: [0] is the next victim */
	uint64_t expect[N];
	size_t nexp = 0;
	srand(policy + 1);
	for (int i = 0; i < N; i++) {
		unsigned p = (unsigned)(rand() % 20);
		int at = -1;
		for (int k = 0; k < nres; k++)
			if (resident[k] == (int)p)
				at = k;
		if (at >= 0) {
			if (policy == UMAPFS_POLICY_LRU) { /* move to most recent */
				memmove(&resident[at], &resident[at + 1], (size_t)(nres - at - 1) * sizeof(int));
				resident[nres - 1] = (int)p;
			}
		} else {
			if (nres == BUF) {
				expect[nexp++] = (uint64_t)resident[0];
				memmove(&resident[0], &resident[1], (BUF - 1) * sizeof(int));
				nres--;
			}
			resident[nres++] = (int)p;
		}
		rd(&f, p);
	}
	cr_assert_eq(n_evicted, nexp);
	for (size_t i = 0; i < nexp; i++)
		cr_assert_eq(evicted[i], expect[i], "victim %zu: got %lu want %lu", i,
			     (unsigned long)evicted[i], (unsigned long)expect[i]);
	struct umapfs_stats st = stats_of(f.e);
	cr_assert_eq(st.evictions, nexp);
	cr_assert_eq(st.hits + st.misses, N);
	fx_fini(&f);
}

Test(engine, fifo_matches_model) { model_check(UMAPFS_POLICY_FIFO); }
Test(engine, lru_matches_model) { model_check(UMAPFS_POLICY_LRU); }

/* Pinned pages are skipped, and the budget makes a pinner wait or fail. */
Test(engine, pinned_pages_are_not_evicted)
{
	struct fx f;
	fx_init(&f, UMAPFS_POLICY_FIFO, 2);
	struct umapfs_page_ref r0, r1;
	cr_assert_eq(umapfs_view_pin(f.v, 0, &r0), 0);
	rd(&f, 1);
	rd(&f, 2); /* must evict 1, not the pinned 0 */
	cr_assert_eq(n_evicted, 1);
	cr_assert_eq(evicted[0], 1);
	cr_assert_eq(umapfs_view_pin(f.v, 2 * PG, &r1), 0);
	/* this thread pins the whole buffer: another page can never fit */
	cr_assert_eq(umapfs_view_pin(f.v, 5 * PG, &(struct umapfs_page_ref){ 0 }), -ENOSPC);
	unsigned char b[16];
	cr_assert_eq(umapfs_view_read(f.v, b, 16, 7 * PG), -ENOSPC);
	umapfs_view_unpin(f.v, &r1, 0);
	rd(&f, 7);
	umapfs_view_unpin(f.v, &r0, 0);
	cr_assert_leq(stats_of(f.e).resident_bytes, 2 * PG);
	fx_fini(&f);
}

/* A multi-page read counts each page once: misses the first time, hits after. */
Test(engine, multi_page_read_counts_each_page_once)
{
	struct fx f;
	fx_init(&f, UMAPFS_POLICY_FIFO, 16);
	unsigned char *b = malloc(6 * PG), *want = malloc(6 * PG);
	pat_fill(want, 6 * PG, 3, 2 * PG + 7);
	cr_assert_eq(umapfs_view_read(f.v, b, 5 * PG, 2 * PG + 7), 5 * PG); /* pages 2..7 */
	cr_assert(memcmp(b, want, 5 * PG) == 0);
	struct umapfs_stats st = stats_of(f.e);
	cr_assert_eq(st.misses, 6);
	cr_assert_eq(st.hits, 0);
	cr_assert_eq(st.fills, 6);
	cr_assert_eq(umapfs_view_read(f.v, b, 5 * PG, 2 * PG + 7), 5 * PG);
	cr_assert(memcmp(b, want, 5 * PG) == 0);
	st = stats_of(f.e);
	cr_assert_eq(st.misses, 6);
	cr_assert_eq(st.hits, 6);
	cr_assert_eq(st.fills, 6);
	free(b);
	free(want);
	fx_fini(&f);
}

/* Two threads each pin half the buffer, then want one more page: no hang. */
static pthread_barrier_t pin_bar;
static struct fx *pin_fx;
static void *pin_more(void *arg)
{
	intptr_t base = (intptr_t)arg;
	struct umapfs_page_ref r[3];
	for (int i = 0; i < 2; i++)
		if (umapfs_view_pin(pin_fx->v, (uint64_t)(base + i) * PG, &r[i]))
			return (void *)(intptr_t)-1000;
	pthread_barrier_wait(&pin_bar);
	int ret = umapfs_view_pin(pin_fx->v, (uint64_t)(base + 2) * PG, &r[2]);
	if (ret == 0)
		umapfs_view_unpin(pin_fx->v, &r[2], 0);
	for (int i = 0; i < 2; i++)
		umapfs_view_unpin(pin_fx->v, &r[i], 0);
	return (void *)(intptr_t)ret;
}

Test(engine, pinned_by_waiters_fails_instead_of_hanging, .timeout = 30)
{
	struct fx f;
	fx_init(&f, UMAPFS_POLICY_FIFO, 4);
	pin_fx = &f;
	pthread_barrier_init(&pin_bar, NULL, 2);
	pthread_t a, b;
	pthread_create(&a, NULL, pin_more, (void *)(intptr_t)0);
	pthread_create(&b, NULL, pin_more, (void *)(intptr_t)10);
	void *ra, *rb;
	pthread_join(a, &ra);
	pthread_join(b, &rb);
	int x = (int)(intptr_t)ra, y = (int)(intptr_t)rb;
	cr_assert(x == 0 || x == -ENOSPC, "a: %d", x);
	cr_assert(y == 0 || y == -ENOSPC, "b: %d", y);
	cr_assert(x == -ENOSPC || y == -ENOSPC, "one of them must give way");
	cr_assert_eq(stats_of(f.e).resident_bytes <= 4 * PG, 1);
	pthread_barrier_destroy(&pin_bar);
	fx_fini(&f);
}
