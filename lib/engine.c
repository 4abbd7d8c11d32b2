/*
 * The engine: configuration, the byte budget and eviction, the pool of
 * io_uring rings used by synchronous misses, and the I/O threads that run
 * prefetches.
 */
#include <errno.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_i.h"

/*
 * Fill *cfg with the defaults: 1 MiB pages, 1 GiB buffer, FIFO, 2 I/O
 * threads, queue depth 64, no log hook, the real system calls.
 */
UMAPFS_EXPORT void umapfs_engine_config_init(struct umapfs_engine_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->struct_size = sizeof(*cfg);
	cfg->page_size = UINT64_C(1) << 20;
	cfg->buffer_size = UINT64_C(1) << 30;
	cfg->policy = UMAPFS_POLICY_FIFO;
	cfg->io_threads = 2;
	cfg->queue_depth = 64;
}

static bool valid_page_size(uint64_t ps)
{
	return ps >= UMAPFS_MIN_PAGE_SIZE && ps <= UMAPFS_MAX_PAGE_SIZE && (ps & (ps - 1)) == 0;
}

/* ---- frames ---- */

#define FRAME_MAP_MIN (UINT64_C(256) << 10)
#define HUGE_SIZE (UINT64_C(2) << 20)
#define CHUNK_MIN_SHIFT 16 /* frames of 64 KiB to 1 MiB are carved from huge-page chunks */
#define CHUNK_MAX_SHIFT 20
#define CHUNK_CLASSES (CHUNK_MAX_SHIFT - CHUNK_MIN_SHIFT + 1)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * Physically contiguous frames.  The block layer splits a request at the
 * device's segment limit (254 on this machine's virtio disk), and a frame of
 * 4 KiB pages is one segment per 4 KiB: an O_DIRECT read of 1 MiB went out as
 * 1016K + 8K, one of 4 MiB as five requests, where kernel readahead into
 * large folios sends whole 4 MiB requests.  So frames of 2 MiB multiples are
 * mappings of their own backed by transparent huge pages, and frames of a
 * power of two from 64 KiB to 1 MiB are carved from such 2 MiB chunks, one
 * frame size per chunk (cold scans and dense random reads at 1M and 4M pages
 * went from 585-1000 KiB requests to 4 MiB merged ones, +15-45 %; dense
 * random at 64K pages from 768 KiB to 1.3 MiB ones, +20-30 %).  Where the kernel has no huge page to give, the same memory is
 * 4 KiB pages and only the request size is lost.
 */
struct hchunk {
	char *base;                      /* 2 MiB aligned */
	unsigned shift;                  /* its frames are 1 << shift bytes */
	uint32_t free_mask;              /* bit i: frame i of the chunk is free */
	struct hchunk *prev, *next;      /* chunks with a free frame */
	bool listed;
};
static pthread_mutex_t hc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hchunk **hc_all; /* every chunk, sorted by base */
static size_t hc_n, hc_cap;
static struct hchunk *hc_free[CHUNK_CLASSES]; /* chunks with a free frame, per frame size */

/* All frames of a chunk of 1 << shift byte frames. */
static uint32_t hc_full_mask(unsigned shift)
{
	unsigned n = (unsigned)(HUGE_SIZE >> shift);
	return n == 32 ? UINT32_MAX : (UINT32_C(1) << n) - 1;
}

/* Is an n-byte frame carved from a chunk (a power of two from 64 KiB to 1 MiB)? */
static bool hc_carved(size_t n)
{
	return n >= (size_t)1 << CHUNK_MIN_SHIFT && n <= (size_t)1 << CHUNK_MAX_SHIFT &&
	       (n & (n - 1)) == 0;
}

/* n bytes (a multiple of 2 MiB) at a 2 MiB boundary, huge pages asked for, populated. */
static void *huge_map(size_t n)
{
	char *raw = mmap(NULL, n + HUGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	char *a = (char *)(((uintptr_t)raw + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1));
	if (a > raw)
		munmap(raw, (size_t)(a - raw));
	if (raw + n + HUGE_SIZE > a + n)
		munmap(a + n, (size_t)(raw + n + HUGE_SIZE - (a + n)));
	madvise(a, n, MADV_HUGEPAGE);
	madvise(a, n, MADV_POPULATE_WRITE); /* best effort: faults do it otherwise */
	return a;
}

static size_t hc_find(const char *base) /* index of the first chunk at or after base */
{
	size_t lo = 0, hi = hc_n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (hc_all[mid]->base < base)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void hc_list(struct hchunk *c, bool on)
{
	struct hchunk **head = &hc_free[c->shift - CHUNK_MIN_SHIFT];
	if (c->listed == on)
		return;
	if (on) {
		c->prev = NULL;
		c->next = *head;
		if (*head)
			(*head)->prev = c;
		*head = c;
	} else {
		if (c->prev)
			c->prev->next = c->next;
		else
			*head = c->next;
		if (c->next)
			c->next->prev = c->prev;
	}
	c->listed = on;
}

static void *chunk_frame_alloc(unsigned shift)
{
	pthread_mutex_lock(&hc_lock);
	struct hchunk *c = hc_free[shift - CHUNK_MIN_SHIFT];
	if (!c) {
		pthread_mutex_unlock(&hc_lock);
		c = calloc(1, sizeof(*c));
		if (!c || !(c->base = huge_map(HUGE_SIZE))) {
			free(c);
			return NULL;
		}
		c->shift = shift;
		c->free_mask = hc_full_mask(shift);
		pthread_mutex_lock(&hc_lock);
		if (hc_n == hc_cap) {
			size_t cap = hc_cap ? 2 * hc_cap : 64;
			struct hchunk **a = realloc(hc_all, cap * sizeof(*a));
			if (!a) {
				pthread_mutex_unlock(&hc_lock);
				munmap(c->base, HUGE_SIZE);
				free(c);
				return NULL;
			}
			hc_all = a;
			hc_cap = cap;
		}
		size_t i = hc_find(c->base);
		memmove(&hc_all[i + 1], &hc_all[i], (hc_n - i) * sizeof(*hc_all));
		hc_all[i] = c;
		hc_n++;
		hc_list(c, true);
	}
	unsigned slot = (unsigned)__builtin_ctz(c->free_mask);
	c->free_mask &= ~(UINT32_C(1) << slot);
	if (!c->free_mask)
		hc_list(c, false);
	pthread_mutex_unlock(&hc_lock);
	return c->base + ((size_t)slot << shift);
}

static void chunk_frame_free(void *p)
{
	char *base = (char *)((uintptr_t)p & ~(uintptr_t)(HUGE_SIZE - 1));
	pthread_mutex_lock(&hc_lock);
	size_t i = hc_find(base);
	if (i == hc_n || hc_all[i]->base != base) {
		pthread_mutex_unlock(&hc_lock);
		abort(); /* not a chunk frame: memory corruption or a size mix-up */
	}
	struct hchunk *c = hc_all[i];
	c->free_mask |= UINT32_C(1) << (unsigned)(((char *)p - base) >> c->shift);
	if (c->free_mask != hc_full_mask(c->shift)) {
		hc_list(c, true);
		pthread_mutex_unlock(&hc_lock);
		return;
	}
	/* the chunk is free again: back to the kernel */
	hc_list(c, false);
	memmove(&hc_all[i], &hc_all[i + 1], (hc_n - i - 1) * sizeof(*hc_all));
	hc_n--;
	pthread_mutex_unlock(&hc_lock);
	munmap(c->base, HUGE_SIZE);
	free(c);
}

/*
 * A page frame of n bytes (a multiple of 4 KiB), 4 KiB aligned, or NULL.
 * Frames of 256 KiB and more are mappings (or carved from chunks, above),
 * populated with one madvise instead of a fault per 4 KiB during the first
 * O_DIRECT read into them: a cold fill of a large page otherwise spends
 * about as long faulting its frame in as reading it.  Thread-safe.
 */
void *frame_alloc(size_t n)
{
	if (hc_carved(n))
		return chunk_frame_alloc((unsigned)__builtin_ctzll(n));
	if (n < FRAME_MAP_MIN) {
		void *p;
		return posix_memalign(&p, IO_ALIGN, n) ? NULL : p;
	}
	if (n % HUGE_SIZE == 0)
		return huge_map(n);
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, n, MADV_POPULATE_WRITE);
	return p;
}

/* Free a frame from frame_alloc(n), with the same n. */
void frame_free(void *p, size_t n)
{
	if (!p)
		return;
	if (hc_carved(n))
		chunk_frame_free(p);
	else if (n < FRAME_MAP_MIN)
		free(p);
	else
		munmap(p, n);
}

/* ---- per-thread pinned bytes, to tell "wait" from "can never fit" ---- */

static _Thread_local struct {
	const struct umapfs_engine *e;
	int64_t bytes;
} tl_pins[4];

void tl_pins_add(const struct umapfs_engine *e, int64_t bytes)
{
	for (int i = 0; i < 4; i++) {
		if (tl_pins[i].e == e) {
			tl_pins[i].bytes += bytes;
			if (tl_pins[i].bytes <= 0)
				tl_pins[i].e = NULL, tl_pins[i].bytes = 0;
			return;
		}
	}
	if (bytes <= 0)
		return;
	for (int i = 0; i < 4; i++) {
		if (!tl_pins[i].e) {
			tl_pins[i].e = e;
			tl_pins[i].bytes = bytes;
			return;
		}
	}
}

static uint64_t tl_pinned(const struct umapfs_engine *e)
{
	for (int i = 0; i < 4; i++)
		if (tl_pins[i].e == e)
			return (uint64_t)tl_pins[i].bytes;
	return 0;
}

/* True the first time `path` is passed for this engine (the O_DIRECT notice). */
bool warn_once(struct umapfs_engine *e, const char *path)
{
	bool first = true;
	pthread_mutex_lock(&e->warn_lock);
	for (size_t i = 0; i < e->n_warned && first; i++)
		if (strcmp(e->warned[i], path) == 0)
			first = false;
	if (first) {
		char **nw = realloc(e->warned, (e->n_warned + 1) * sizeof(*nw));
		char *dup = strdup(path);
		if (nw && dup) {
			e->warned = nw;
			e->warned[e->n_warned++] = dup;
		} else {
			if (nw)
				e->warned = nw;
			free(dup);
		}
	}
	pthread_mutex_unlock(&e->warn_lock);
	return first;
}

/* ---- budget ---- */

/* Wake threads waiting for budget (a page was unpinned or released). */
void budget_wake(struct umapfs_engine *e)
{
	pthread_mutex_lock(&e->wait_lock);
	e->wait_gen++;
	pthread_cond_broadcast(&e->wait_cond);
	pthread_mutex_unlock(&e->wait_lock);
}

void budget_release(struct umapfs_engine *e, uint64_t n)
{
	if (!n)
		return;
	atomic_fetch_sub(&e->used, n);
	if (atomic_load(&e->waiters))
		budget_wake(e);
}

static bool claim_for_evict(struct page *p)
{
	int zero = 0;
	return atomic_compare_exchange_strong(&p->pins, &zero, PIN_EVICT);
}

/*
 * Evict one page chosen by the policy.  Returns 1 when a page left, 0 when
 * no page can be claimed (all pinned or the buffer holds only fills in
 * flight), -EAGAIN when candidates existed but their front end asked to keep
 * them, or the write-back error when every candidate's write-back failed.
 */
static int evict_one(struct umapfs_engine *e, uint64_t want, void **frame)
{
	size_t tries;
	int last = 0;

	pthread_mutex_lock(&e->policy_lock);
	tries = e->policy.count;
	pthread_mutex_unlock(&e->policy_lock);

	for (size_t i = 0; i <= tries; i++) {
		pthread_mutex_lock(&e->policy_lock);
		struct page *p = e->policy.ops->victim(&e->policy, claim_for_evict);
		pthread_mutex_unlock(&e->policy_lock);
		if (!p)
			return last;
		/* A victim of the size we need hands its frame and charge over. */
		int r = page_retire(e, p, true, p->charge == want ? frame : NULL);
		if (r == 0)
			return 1;
		last = r;
	}
	return last;
}

/*
 * Reserve n bytes of the budget, evicting pages while it is full.  When no
 * page can be evicted, waits for an unpin or a release unless `nowait` (then
 * -EAGAIN).  When the reservation is the charge of an evicted page of the
 * same size, its frame is handed over in *frame (else *frame is NULL): the
 * caller then skips allocating (and the kernel zeroing) a new one.
 * Returns 0, -ENOSPC when the request can never fit (larger than
 * the buffer, the caller's own pins leave too little room, or every byte of
 * the buffer is pinned by threads all waiting here), or a
 * write-back error when the buffer is full of dirty pages that cannot be
 * written back.
 */
int budget_reserve(struct umapfs_engine *e, uint64_t n, bool nowait, void **frame)
{
	const uint64_t cap = e->cfg.buffer_size;

	*frame = NULL;
	if (n > cap || tl_pinned(e) + n > cap)
		return -ENOSPC;
	for (;;) {
		uint64_t cur = atomic_load(&e->used);
		while (cur + n <= cap) {
			if (atomic_compare_exchange_weak(&e->used, &cur, cur + n))
				return 0;
		}
		int r = evict_one(e, n, frame);
		if (r == 1) {
			if (*frame)
				return 0;
			continue;
		}
		if (r < 0 && r != -EAGAIN)
			return r;
		if (nowait)
			return -EAGAIN;

		/*
		 * Register as a waiter, then look once more: an unpin or release
		 * either happened before (we see it now) or sees waiters > 0 and
		 * bumps wait_gen.
		 */
		pthread_mutex_lock(&e->wait_lock);
		uint64_t gen = e->wait_gen;
		atomic_fetch_add(&e->waiters, 1);
		pthread_mutex_unlock(&e->wait_lock);
		r = evict_one(e, n, frame);
		if (r == 1) {
			atomic_fetch_sub(&e->waiters, 1);
			if (*frame)
				return 0;
			continue;
		}
		if (r < 0 && r != -EAGAIN) {
			atomic_fetch_sub(&e->waiters, 1);
			return r;
		}
		cur = atomic_load(&e->used);
		if (cur + n <= cap) {
			atomic_fetch_sub(&e->waiters, 1);
			continue;
		}
		/*
		 * Everything is pinned or in flight.  If every charged byte is
		 * pinned by threads that are themselves waiting here, nobody can
		 * ever unpin: fail this request rather than hang.
		 */
		uint64_t mine = tl_pinned(e);
		if (mine) {
			uint64_t wp = atomic_fetch_add(&e->waiting_pinned, mine) + mine;
			if (wp >= atomic_load(&e->used)) {
				atomic_fetch_sub(&e->waiting_pinned, mine);
				atomic_fetch_sub(&e->waiters, 1);
				elog(e, UMAPFS_LOG_WARNING,
				     "buffer full of pages pinned by threads waiting for room: failing a request with ENOSPC");
				return -ENOSPC;
			}
		}
		pthread_mutex_lock(&e->wait_lock);
		if (e->wait_gen == gen) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += r == -EAGAIN ? 2000000 : 50000000;
			if (ts.tv_nsec >= 1000000000)
				ts.tv_sec++, ts.tv_nsec -= 1000000000;
			pthread_cond_timedwait(&e->wait_cond, &e->wait_lock, &ts);
		}
		atomic_fetch_sub(&e->waiters, 1);
		pthread_mutex_unlock(&e->wait_lock);
		if (mine)
			atomic_fetch_sub(&e->waiting_pinned, mine);
	}
}

/* ---- ring pool ---- */

/* Take a ring from the pool (creating one if empty); NULL and *err on failure. */
struct ring_slot *ring_get(struct umapfs_engine *e, int *err)
{
	struct ring_slot *r;

	pthread_mutex_lock(&e->ring_lock);
	r = e->free_rings;
	if (r)
		e->free_rings = r->next;
	pthread_mutex_unlock(&e->ring_lock);
	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r) {
		*err = -ENOMEM;
		return NULL;
	}
	if (e->no_uring)
		return r;
	/* COOP_TASKRUN: completions are reaped by the submitter anyway, no IPI needed. */
	int ret = io_uring_queue_init(e->cfg.queue_depth, &r->ring, IORING_SETUP_COOP_TASKRUN);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(e->cfg.queue_depth, &r->ring, 0);
	if (ret < 0) {
		elog(e, UMAPFS_LOG_ERR, "io_uring_queue_init(%u): %s", e->cfg.queue_depth,
		     strerror(-ret));
		free(r);
		*err = ret;
		return NULL;
	}
	r->has_ring = true;
	return r;
}

void ring_put(struct umapfs_engine *e, struct ring_slot *r)
{
	pthread_mutex_lock(&e->ring_lock);
	r->next = e->free_rings;
	e->free_rings = r;
	pthread_mutex_unlock(&e->ring_lock);
}

/* ---- prefetch ---- */

struct pf_req {
	struct pf_req *next;
	struct umapfs_view *v;
	uint64_t off, len;
	umapfs_prefetch_cb cb;
	void *arg;
	int efd;
	int status; /* preset (e.g. -ENOSPC) or 0 */
};

static void pf_complete(struct pf_req *q, int status)
{
	if (q->cb)
		q->cb(q->arg, q->v, q->off, q->len, status);
	if (q->efd >= 0) {
		uint64_t one = 1;
		ssize_t w;
		do
			w = write(q->efd, &one, sizeof(one));
		while (w < 0 && errno == EINTR);
	}
}

static int pf_run(struct pf_req *q)
{
	struct umapfs_view *v = q->v;

	if (q->status)
		return q->status;
	if (atomic_load(&v->dying))
		return -ECANCELED;
	if (!q->len)
		return 0;
	uint64_t first = q->off >> v->page_shift;
	uint64_t last = (q->off + q->len - 1) >> v->page_shift;
	return pages_fill_range(v, first, last - first + 1, false, false);
}

static void *io_thread(void *arg)
{
	struct umapfs_engine *e = arg;

	pthread_mutex_lock(&e->q_lock);
	for (;;) {
		while (!e->q_head && !e->stopping)
			pthread_cond_wait(&e->q_cond, &e->q_lock);
		if (!e->q_head)
			break;
		struct pf_req *q = e->q_head;
		e->q_head = q->next;
		if (!e->q_head)
			e->q_tail = NULL;
		pthread_mutex_unlock(&e->q_lock);

		int st = pf_run(q);
		pf_complete(q, st);

		pthread_mutex_lock(&e->q_lock);
		q->v->active--;
		pthread_cond_broadcast(&e->q_done);
		free(q);
	}
	pthread_mutex_unlock(&e->q_lock);
	return NULL;
}

/*
 * Queue an asynchronous fill of [off, off+len) (clamped to the view).  The
 * request completes once every page was made resident (status 0) or with the
 * first error; a range whose pages cannot all fit in the buffer at once
 * completes with -ENOSPC.  `cb` runs on an engine I/O thread; `eventfd` gets
 * 1 added.  Returns 0 once queued, -EINVAL when off is past the end or v is
 * NULL, -ESHUTDOWN when the view is being destroyed, -ENOMEM.
 */
UMAPFS_EXPORT int umapfs_view_prefetch(struct umapfs_view *v, uint64_t off, uint64_t len,
				       umapfs_prefetch_cb cb, void *arg, int eventfd)
{
	if (!v || off > v->size)
		return -EINVAL;
	struct umapfs_engine *e = v->e;
	if (len > v->size - off)
		len = v->size - off;
	struct pf_req *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->v = v;
	q->off = off;
	q->len = len;
	q->cb = cb;
	q->arg = arg;
	q->efd = eventfd;
	if (len) {
		uint64_t first = off >> v->page_shift, last = (off + len - 1) >> v->page_shift;
		uint64_t need = (last - first) * v->page_size;
		uint64_t lastlen = v->size - (last << v->page_shift);
		need += round_up(lastlen < v->page_size ? lastlen : v->page_size, IO_ALIGN);
		if (last - first + 1 > e->cfg.buffer_size / v->page_size || need > e->cfg.buffer_size)
			q->status = -ENOSPC;
	}
	pthread_mutex_lock(&e->q_lock);
	if (atomic_load(&v->dying) || e->stopping) {
		pthread_mutex_unlock(&e->q_lock);
		free(q);
		return -ESHUTDOWN;
	}
	v->active++;
	if (e->q_tail)
		e->q_tail->next = q;
	else
		e->q_head = q;
	e->q_tail = q;
	pthread_cond_signal(&e->q_cond);
	pthread_mutex_unlock(&e->q_lock);
	atomic_fetch_add(&e->prefetches, 1);
	return 0;
}

/*
 * Complete the view's queued (not yet started) prefetches with -ECANCELED
 * and wait for the running ones.  Called by view destroy after `dying` is set.
 */
void prefetch_cancel_view(struct umapfs_view *v)
{
	struct umapfs_engine *e = v->e;
	struct pf_req *mine = NULL, **pp;

	pthread_mutex_lock(&e->q_lock);
	for (pp = &e->q_head; *pp;) {
		struct pf_req *q = *pp;
		if (q->v == v) {
			*pp = q->next;
			q->next = mine;
			mine = q;
		} else {
			pp = &q->next;
		}
	}
	e->q_tail = NULL;
	for (struct pf_req *q = e->q_head; q; q = q->next)
		e->q_tail = q;
	pthread_mutex_unlock(&e->q_lock);

	while (mine) {
		struct pf_req *q = mine;
		mine = q->next;
		pf_complete(q, -ECANCELED);
		free(q);
		pthread_mutex_lock(&e->q_lock);
		v->active--;
		pthread_mutex_unlock(&e->q_lock);
	}
	pthread_mutex_lock(&e->q_lock);
	while (v->active > 0)
		pthread_cond_wait(&e->q_done, &e->q_lock);
	pthread_mutex_unlock(&e->q_lock);
}

/* ---- life cycle ---- */

static void engine_free(struct umapfs_engine *e)
{
	if (e->threads) {
		pthread_mutex_lock(&e->q_lock);
		e->stopping = true;
		pthread_cond_broadcast(&e->q_cond);
		pthread_mutex_unlock(&e->q_lock);
		for (unsigned i = 0; i < e->nthreads; i++)
			pthread_join(e->threads[i], NULL);
		free(e->threads);
	}
	while (e->free_rings) {
		struct ring_slot *r = e->free_rings;
		e->free_rings = r->next;
		if (r->has_ring)
			io_uring_queue_exit(&r->ring);
		frame_free(r->bounce, r->bounce_size);
		free(r);
	}
	for (unsigned i = 0; i < NSHARDS; i++) {
		pthread_mutex_destroy(&e->shards[i].lock);
		pthread_cond_destroy(&e->shards[i].cond);
		free(e->shards[i].buckets);
	}
	for (size_t i = 0; i < e->n_warned; i++)
		free(e->warned[i]);
	free(e->warned);
	pthread_mutex_destroy(&e->warn_lock);
	pthread_mutex_destroy(&e->policy_lock);
	pthread_mutex_destroy(&e->wait_lock);
	pthread_cond_destroy(&e->wait_cond);
	pthread_mutex_destroy(&e->ring_lock);
	pthread_mutex_destroy(&e->q_lock);
	pthread_cond_destroy(&e->q_cond);
	pthread_cond_destroy(&e->q_done);
	free(e);
}

/*
 * Validate `cfg` and create an engine with its I/O threads.  A config with
 * struct_size smaller than ours is accepted (missing fields keep their
 * defaults).  Returns 0 and stores the engine in *out, -EINVAL (reason
 * logged through cfg->log) for a bad configuration, -ENOMEM, or the error
 * of creating a thread or io_uring.
 */
UMAPFS_EXPORT int umapfs_engine_create(const struct umapfs_engine_config *cfg,
				       struct umapfs_engine **out)
{
	struct umapfs_engine *e;
	struct umapfs_engine_config c;
	int ret = -EINVAL;

	if (!cfg || !out)
		return -EINVAL;
	*out = NULL;
	umapfs_engine_config_init(&c);
	if (cfg->struct_size < offsetof(struct umapfs_engine_config, page_size) + sizeof(uint64_t))
		return -EINVAL;
	memcpy(&c, cfg, cfg->struct_size < sizeof(c) ? cfg->struct_size : sizeof(c));
	c.struct_size = sizeof(c);

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->cfg = c;
	for (unsigned i = 0; i < NSHARDS; i++) {
		pthread_mutex_init(&e->shards[i].lock, NULL);
		pthread_cond_init(&e->shards[i].cond, NULL);
	}
	pthread_mutex_init(&e->warn_lock, NULL);
	pthread_mutex_init(&e->policy_lock, NULL);
	pthread_mutex_init(&e->wait_lock, NULL);
	pthread_cond_init(&e->wait_cond, NULL);
	pthread_mutex_init(&e->ring_lock, NULL);
	pthread_mutex_init(&e->q_lock, NULL);
	pthread_cond_init(&e->q_cond, NULL);
	pthread_cond_init(&e->q_done, NULL);
	sys_fill_defaults(&e->sys, c.sys);

	if (!valid_page_size(c.page_size)) {
		elog(e, UMAPFS_LOG_ERR,
		     "page size %llu is not a power of two between 4 KiB and 64 MiB",
		     (unsigned long long)c.page_size);
		goto out;
	}
	if (c.buffer_size < c.page_size) {
		elog(e, UMAPFS_LOG_ERR, "buffer size %llu is smaller than one page (%llu)",
		     (unsigned long long)c.buffer_size, (unsigned long long)c.page_size);
		goto out;
	}
	if (policy_init(&e->policy, c.policy) < 0) {
		elog(e, UMAPFS_LOG_ERR, "unknown replacement policy %d", c.policy);
		goto out;
	}
	if (c.io_threads < 1 || c.io_threads > 256) {
		elog(e, UMAPFS_LOG_ERR, "io_threads %u: must be 1..256", c.io_threads);
		goto out;
	}
	if (c.queue_depth < 1 || c.queue_depth > 4096) {
		elog(e, UMAPFS_LOG_ERR, "queue_depth %u: must be 1..4096", c.queue_depth);
		goto out;
	}
	/*
	 * One ring now, so a kernel (or a sandbox) without io_uring is found
	 * here: the engine then issues the same reads and writes synchronously
	 * through the seam, and says so.  UMAPFS_NO_IO_URING=1 forces that mode.
	 */
	const char *nu = getenv("UMAPFS_NO_IO_URING");
	if (nu && *nu && strcmp(nu, "0") != 0) {
		e->no_uring = true;
		elog(e, UMAPFS_LOG_NOTICE, "io_uring disabled by UMAPFS_NO_IO_URING: synchronous I/O");
	}
	struct ring_slot *r = ring_get(e, &ret);
	if (!r && (ret == -ENOSYS || ret == -EPERM || ret == -EACCES || ret == -EOPNOTSUPP)) {
		elog(e, UMAPFS_LOG_WARNING, "io_uring unavailable (%s): falling back to synchronous I/O",
		     strerror(-ret));
		e->no_uring = true;
		r = ring_get(e, &ret);
	}
	if (!r)
		goto out;
	ring_put(e, r);

	e->threads = calloc(c.io_threads, sizeof(pthread_t));
	if (!e->threads) {
		ret = -ENOMEM;
		goto out;
	}
	for (; e->nthreads < c.io_threads; e->nthreads++) {
		int err = pthread_create(&e->threads[e->nthreads], NULL, io_thread, e);
		if (err) {
			elog(e, UMAPFS_LOG_ERR, "cannot start I/O thread: %s", strerror(err));
			ret = -err;
			goto out;
		}
	}
	*out = e;
	return 0;
out:
	engine_free(e);
	return ret;
}

/*
 * Stop the I/O threads and free the engine.  Returns 0, -EBUSY (and does
 * nothing) while views exist, -EINVAL for NULL.
 */
UMAPFS_EXPORT int umapfs_engine_destroy(struct umapfs_engine *e)
{
	if (!e)
		return -EINVAL;
	if (atomic_load(&e->nviews) > 0)
		return -EBUSY;
	engine_free(e);
	return 0;
}
