/*
 * umapfs engine internals (lib/).  Private: nothing here is installed.
 *
 * Layout of the engine:
 *   engine.c  engine life cycle, the byte budget, eviction, ring pool,
 *             I/O threads and prefetch
 *   view.c    views, the sharded page table, read/write/pin/unpin/flush
 *   io.c      page fills and write-back (io_uring O_DIRECT, buffered fallback)
 *   policy.c  replacement policies (FIFO, CLOCK, LRU)
 *   stats.c   counters, the fill-latency histogram, formatting
 *   util.c    parsing helpers, logging, the system-call seam
 *
 * Locking (never nest except as listed):
 *   shard->lock        guards one shard's hash chains and page->state.
 *   e->policy_lock     guards the policy's lists; never held with a shard lock.
 *   e->wait_lock       budget waiters; leaf.
 *   e->q_lock          prefetch queue and view->active; leaf.
 *   v->lock            hooks and once-only log flags; leaf.
 * page->pins is atomic: >= 0 is the number of pins, PIN_EVICT means an evictor
 * (or view destroy) has claimed the page.  A claim is taken by CAS 0 -> PIN_EVICT
 * so the hit path (shard lock + CAS) never waits for the policy.
 */
#ifndef UMAPFS_ENGINE_I_H
#define UMAPFS_ENGINE_I_H

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include "umapfs/engine.h"

#define UMAPFS_EXPORT __attribute__((visibility("default")))

#define NSHARDS 256
#define PIN_EVICT (INT_MIN / 2)
#define IO_ALIGN 4096u

enum page_state { PAGE_FILLING = 0, PAGE_RESIDENT = 1, PAGE_FAILED = 2 };

struct page {
	struct page *hnext;        /* hash chain (shard lock) */
	struct umapfs_view *view;
	uint64_t index;
	uint64_t offset;           /* view offset of the first byte */
	size_t len;                /* valid bytes */
	size_t charge;             /* bytes charged to the budget (frame size) */
	void *data;                /* the frame: aligned, also the I/O buffer */
	_Atomic int pins;
	int state;                 /* enum page_state (shard lock) */
	int err;                   /* PAGE_FAILED: the error */
	atomic_bool dirty;
	/* replacement policy (policy lock) */
	struct page *prev, *next;
	bool in_policy;
	atomic_uchar ref;          /* CLOCK reference bit */
	_Atomic uint64_t last_use; /* LRU: stamp of the latest access */
	uint64_t list_stamp;       /* LRU: stamp the list position reflects */
	uint64_t fill_start_ns;
};

struct shard {
	_Alignas(64) pthread_mutex_t lock;
	pthread_cond_t cond;       /* fill finished / page left / claim dropped */
	struct page **buckets;
	size_t nbuckets, count;
	uint64_t hits, misses;
};

/* ---- replacement policies (policy.c) ---- */

struct policy;
typedef bool (*policy_claim_fn)(struct page *p);

struct policy_ops {
	const char *name;
	/* A page became resident (or was kept after a refused eviction). */
	void (*insert)(struct policy *pol, struct page *p);
	/* A claimed page leaves for another reason (view destroy). */
	void (*remove)(struct policy *pol, struct page *p);
	/* A hit.  Lock-free: called without the policy lock. */
	void (*touch)(struct policy *pol, struct page *p);
	/*
	 * Walk candidates in the policy's order, calling claim() on each; the
	 * first that claim() accepts is removed and returned.  NULL: none.
	 */
	struct page *(*victim)(struct policy *pol, policy_claim_fn claim);
};

struct policy {
	const struct policy_ops *ops;
	struct page *head, *tail;  /* FIFO/LRU: oldest first; CLOCK: ring via head */
	struct page *hand;         /* CLOCK */
	size_t count;
	_Atomic uint64_t clock;    /* LRU stamps */
};

int policy_init(struct policy *pol, int which);

/* ---- statistics (stats.c) ---- */

#define HIST_SUB 8 /* linear sub-buckets per power of two */
#define HIST_BUCKETS (64 * HIST_SUB)

struct hist {
	_Atomic uint64_t b[HIST_BUCKETS];
	_Atomic uint64_t max;
	_Atomic uint64_t n;
};

void hist_add(struct hist *h, uint64_t ns);
uint64_t hist_percentile(struct hist *h, double q);
uint64_t now_ns(void);

/* ---- the engine ---- */

struct ring_slot {
	struct ring_slot *next;
	bool has_ring;       /* false: the engine runs without io_uring */
	struct io_uring ring;
	char *bounce;        /* cached bounce area for unaligned reads (grow-only) */
	size_t bounce_size;
};

#define BOUNCE_CACHE_MAX (UINT64_C(16) << 20) /* larger bounce areas are not kept */

struct pf_req;

struct umapfs_engine {
	struct umapfs_engine_config cfg;
	struct umapfs_sys sys;     /* NULL members replaced by the real calls */
	struct shard shards[NSHARDS];

	_Atomic uint64_t used;     /* bytes charged to the budget */
	_Atomic uint64_t next_view_id;

	pthread_mutex_t policy_lock;
	struct policy policy;

	pthread_mutex_t wait_lock; /* budget waiters */
	pthread_cond_t wait_cond;
	uint64_t wait_gen;
	_Atomic int waiters;
	_Atomic uint64_t waiting_pinned; /* bytes pinned by threads waiting for budget */

	pthread_mutex_t ring_lock;
	struct ring_slot *free_rings;
	bool no_uring;             /* io_uring unavailable or disabled: synchronous seam calls */

	pthread_mutex_t q_lock;
	pthread_cond_t q_cond;     /* new request, or stop */
	pthread_cond_t q_done;     /* a request finished (view->active dropped) */
	struct pf_req *q_head, *q_tail;
	bool stopping;
	pthread_t *threads;
	unsigned nthreads;

	_Atomic int nviews;

	pthread_mutex_t warn_lock;  /* paths already reported as refusing O_DIRECT */
	char **warned;
	size_t n_warned;

	_Atomic uint64_t fills, fill_errors, evictions, writebacks, writeback_errors;
	_Atomic uint64_t bytes_read, bytes_written, dirty_bytes, prefetches;
	struct hist fill_hist;
};

/* ---- views ---- */

struct vfile {
	char *path;
	int fd;      /* O_DIRECT where possible */
	int bfd;     /* buffered twin for unaligned write-back edges, or -1 */
	bool direct;
	uint64_t size;
};

struct vext {
	int kind;
	uint64_t start;       /* view offset */
	uint64_t length;
	uint64_t file_offset; /* FILE */
	int file;             /* FILE: index into files[] */
	unsigned char *data;  /* MEMORY: the engine's copy */
};

struct umapfs_view {
	struct umapfs_engine *e;
	uint64_t id;
	char *name;
	uint64_t size, page_size;
	unsigned page_shift;
	bool writable;
	struct vext *ext;
	size_t n_ext;
	struct vfile *files;
	size_t n_files;
	bool has_ops;
	struct umapfs_view_ops ops;
	void *ops_arg;

	pthread_mutex_t lock;      /* hooks, warned */
	pthread_mutex_t flush_lock; /* one flush at a time */
	struct umapfs_view_hooks hooks;
	bool has_hooks;
	bool zero_warned;

	int active;                /* queued or running prefetches (e->q_lock) */
	atomic_bool dying;
};

/* ---- util.c ---- */
void elog(struct umapfs_engine *e, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void sys_fill_defaults(struct umapfs_sys *out, const struct umapfs_sys *in);
bool warn_once(struct umapfs_engine *e, const char *path);

static inline uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

/* ---- engine.c ---- */
/* Page frames: 4 KiB aligned; large ones are mapped and populated in one go. */
void *frame_alloc(size_t n);
void frame_free(void *p, size_t n);
int budget_reserve(struct umapfs_engine *e, uint64_t n, bool nowait, void **frame);
void budget_release(struct umapfs_engine *e, uint64_t n);
void budget_wake(struct umapfs_engine *e);
struct ring_slot *ring_get(struct umapfs_engine *e, int *err);
void ring_put(struct umapfs_engine *e, struct ring_slot *r);
void prefetch_cancel_view(struct umapfs_view *v);
void tl_pins_add(const struct umapfs_engine *e, int64_t bytes);

/* ---- view.c (page table) ---- */
struct shard *page_shard(struct umapfs_engine *e, const struct umapfs_view *v, uint64_t idx,
			 uint64_t *hash);
int page_retire(struct umapfs_engine *e, struct page *p, bool evict, void **frame);
int page_get(struct umapfs_view *v, uint64_t idx, const void *whole_src, bool count,
	     struct page **out);
void page_unpin(struct umapfs_engine *e, struct page *p);
int pages_fill_range(struct umapfs_view *v, uint64_t first, uint64_t n, bool nowait_first,
		     bool count);
void page_mark_dirty(struct umapfs_engine *e, struct page *p);

/* ---- io.c ---- */
/* Called by io_fill_pages for page i of its batch once it is filled (err 0) or failed. */
typedef void (*io_page_done_fn)(void *arg, size_t i, int err);
/*
 * Fill pages[0..n) (all claimed, frames allocated); errs[i] gets 0 or -errno.
 * done (if not NULL) is called for each page, in page order, as soon as its
 * reads and those of the pages before it have completed, before io_fill_pages
 * returns: a waiter for the first page of a large batch need not wait for the
 * whole batch, and a sequential reader gets its pages as a stream.
 */
void io_fill_pages(struct umapfs_view *v, struct page **pages, size_t n, int *errs,
		   io_page_done_fn done, void *arg);
/* Write a page back to its backing store.  Returns 0 or -errno. */
int io_writeback_page(struct umapfs_view *v, struct page *p);
/* Write several pages back, one submission; errs[i] gets 0 or -errno. */
void io_writeback_pages(struct umapfs_view *v, struct page **pages, size_t n, int *errs);
/* Sync every backing file (or ops->sync).  Returns 0 or the first error. */
int io_sync_view(struct umapfs_view *v);

#endif
