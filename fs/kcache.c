/*
 * Keeping the kernel page cache in step with the mount.
 *
 * The kernel page cache is where a mapped access costs a memory access, so
 * that is where umapfs keeps a view's hot pages: open with keep_cache, and
 * when the engine fills an application page, push all of it into the kernel
 * cache (notify_store), so one fault brings page_size bytes from one I/O.
 *
 * The mount's budget (buffer_size) is enforced here, over the pages the
 * kernel may hold: every application page that enters the kernel cache (by a
 * READ reply, a WRITE, or a push) is remembered in FIFO order, and when their
 * total exceeds the budget the oldest range is dropped from the kernel
 * (notify_inval_inode, which also unmaps it from every process and writes
 * back pages the kernel holds dirty through WRITE requests first).  The
 * engine itself keeps only a small staging buffer for fills in flight, so
 * the two copies are never both charged in full: kernel-resident pages of
 * the mount plus the daemon's memory stay within buffer_size + staging.
 *
 * Notify calls are made only from the one thread here, never from a request
 * handler: a push into a page the kernel has locked for a READ this very
 * handler should answer would deadlock.  Hooks only queue the event; this
 * thread copies the page out of the engine a chunk at a time (refilling it in
 * the rare case it was evicted meanwhile) and pushes with no engine pin held,
 * since a push waits for folio locks that a READ needing staging room holds.
 * A page is pushed whole once per stay in the kernel (kfull), whether it was
 * filled for a fault, by prefetch, or served again to a READ of a few blocks.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "umapfs_i.h"

#define KB_CHUNK_BITS 20 /* pages per bitmap chunk: 2^20 */
#define KB_WORDS ((UINT64_C(1) << KB_CHUNK_BITS) / 64)
#define STORE_CHUNK (UINT64_C(4) << 20)
#define INVAL_RUN 4 /* invalidations served before a waiting push */

static int kb_test(const struct kbitmap *b, uint64_t page)
{
	uint64_t c = page >> KB_CHUNK_BITS;
	if (c >= b->nchunks || !b->chunks[c])
		return 0;
	uint64_t i = page & ((UINT64_C(1) << KB_CHUNK_BITS) - 1);
	return (b->chunks[c][i / 64] >> (i % 64)) & 1;
}

/* The number of pages of [first, end) set, a word at a time where it can. */
static uint64_t kb_count(const struct kbitmap *b, uint64_t first, uint64_t end)
{
	uint64_t n = 0, p = first;
	while (p < end) {
		uint64_t c = p >> KB_CHUNK_BITS, i = p & ((UINT64_C(1) << KB_CHUNK_BITS) - 1);
		if (c >= b->nchunks)
			break;
		uint64_t chunk_end = (c + 1) << KB_CHUNK_BITS;
		if (!b->chunks[c]) {
			p = chunk_end;
			continue;
		}
		if (i % 64 == 0 && p + 64 <= end) {
			n += (uint64_t)__builtin_popcountll(b->chunks[c][i / 64]);
			p += 64;
		} else {
			n += (b->chunks[c][i / 64] >> (i % 64)) & 1;
			p++;
		}
	}
	return n;
}

/* Returns 0, or -ENOMEM when a chunk cannot be allocated. */
static int kb_set(struct kbitmap *b, uint64_t page, int on)
{
	uint64_t c = page >> KB_CHUNK_BITS;
	if (c >= b->nchunks)
		return -EINVAL;
	if (!b->chunks[c]) {
		if (!on)
			return 0;
		b->chunks[c] = calloc(KB_WORDS, sizeof(uint64_t));
		if (!b->chunks[c])
			return -ENOMEM;
	}
	uint64_t i = page & ((UINT64_C(1) << KB_CHUNK_BITS) - 1);
	if (on)
		b->chunks[c][i / 64] |= UINT64_C(1) << (i % 64);
	else
		b->chunks[c][i / 64] &= ~(UINT64_C(1) << (i % 64));
	return 0;
}

void kbitmap_free(struct kbitmap *b)
{
	for (uint64_t c = 0; c < b->nchunks; c++)
		free(b->chunks[c]);
	free(b->chunks);
	b->chunks = NULL;
	b->nchunks = 0;
}

static uint64_t page_len(const struct node *n, uint64_t page)
{
	uint64_t off = page * n->page_size;
	return n->size - off < n->page_size ? n->size - off : n->page_size;
}

static void enqueue_locked(struct daemon *d, struct kc_event *ev)
{
	struct kc_event **head = ev->store ? &d->q_head : &d->inv_head;
	struct kc_event **tail = ev->store ? &d->q_tail : &d->inv_tail;
	if (ev->store)
		d->push_backlog += ev->len;
	ev->next = NULL;
	if (*tail)
		(*tail)->next = ev;
	else
		*head = ev;
	*tail = ev;
	pthread_cond_broadcast(&d->kc_cond); /* an invalidation is for the first thread only */
}

/*
 * Forget the oldest remembered page and return it.  Invalidations overtake
 * pushes (the budget must not wait behind a backlog of copies), so a push of
 * this page still queued must not run after its invalidation: clearing kfull
 * cancels it (see kc_main).
 */
static struct kc_entry take_oldest_locked(struct daemon *d)
{
	struct kc_entry e = d->fifo[d->fifo_head];
	d->fifo_head = (d->fifo_head + 1) % d->fifo_cap;
	d->fifo_len--;
	struct node *n = d->nodes[e.node];
	kb_set(&n->kc, e.page, 0);
	kb_set(&n->kfull, e.page, 0);
	d->kc_bytes -= page_len(n, e.page);
	return e;
}

/* Queue the invalidation of pages [first, first + count) of view n. */
static void queue_inval_locked(struct daemon *d, struct node *n, uint64_t first, uint64_t count)
{
	struct kc_event *ev = calloc(1, sizeof(*ev));
	if (!ev) {
		dlog(UMAPFS_LOG_ERR, "out of memory queueing a kernel-cache invalidation");
		return;
	}
	uint64_t end = (first + count) * n->page_size;
	ev->store = 0;
	ev->node = n;
	ev->off = first * n->page_size;
	ev->len = (end < n->size ? end : n->size) - ev->off;
	enqueue_locked(d, ev);
}

/* Drop the oldest remembered page and queue its invalidation. */
static void pop_oldest_locked(struct daemon *d)
{
	struct kc_entry e = take_oldest_locked(d);
	queue_inval_locked(d, d->nodes[e.node], e.page, 1);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct kc_entry *x = a, *y = b;
	if (x->node != y->node)
		return x->node < y->node ? -1 : 1;
	return x->page < y->page ? -1 : x->page > y->page;
}

/*
 * Is the oldest remembered page a neighbour of a page of the batch, with
 * pages of the batch on both sides of it (a hole in a run)?  Then it was
 * charged a little out of order.  Random access rarely has such neighbours:
 * it is not made to drop more than its slack.
 */
static bool oldest_fills_hole(const struct daemon *d, size_t nb)
{
	const struct kc_entry *h = &d->fifo[d->fifo_head];
	bool below = false, above = false, next_to = false;
	for (size_t i = 0; i < nb; i++)
		if (d->batch[i].node == h->node) {
			below |= d->batch[i].page < h->page;
			above |= d->batch[i].page > h->page;
			next_to |= d->batch[i].page + 1 == h->page || d->batch[i].page == h->page + 1;
		}
	return below && above && next_to;
}

/*
 * Over the budget: drop the oldest pages down to kc_budget - kc_slack, in one
 * go, as few invalidations as possible.  Each invalidation of mapped pages
 * costs the kernel a TLB shootdown (an interrupt to every CPU running the
 * program, and a wait for them), so the dropped pages are sorted and each run
 * of neighbours becomes one invalidation: a sequential scan drops kc_slack
 * per call, and a sweep through the planes of a cube drops neighbouring
 * pages of a frame together.  The slack is taken below the budget, so the
 * bound holds.
 */
static void evict_locked(struct daemon *d)
{
	uint64_t target = d->kc_budget - d->kc_slack;
	do {
		size_t nb = 0;
		while (d->kc_bytes > target && d->fifo_len > 1 && nb < d->batch_cap)
			d->batch[nb++] = take_oldest_locked(d);
		/*
		 * Pages are charged in the order their fills and READs complete,
		 * and concurrent prefetch batches complete in either order, so a
		 * scan's oldest pages can have holes whose pages come next in the
		 * FIFO.  Take those too (at most twice the slack in all): one
		 * invalidation instead of two or three.
		 */
		while (nb < 2 * d->batch_cap && d->fifo_len > 1 && oldest_fills_hole(d, nb))
			d->batch[nb++] = take_oldest_locked(d);
		qsort(d->batch, nb, sizeof(*d->batch), entry_cmp);
		for (size_t i = 0; i < nb;) {
			size_t j = i + 1;
			while (j < nb && d->batch[j].node == d->batch[i].node &&
			       d->batch[j].page == d->batch[i].page + (j - i))
				j++;
			queue_inval_locked(d, d->nodes[d->batch[i].node], d->batch[i].page, j - i);
			i = j;
		}
	} while (d->kc_bytes > d->kc_budget && d->fifo_len > 1);
}

static void note_locked(struct daemon *d, struct node *n, uint64_t page)
{
	if (kb_test(&n->kc, page))
		return;
	if (kb_set(&n->kc, page, 1) < 0)
		return; /* not remembered: the page is then outside the budget; rare */
	if (d->fifo_len == d->fifo_cap)
		pop_oldest_locked(d);
	size_t tail = (d->fifo_head + d->fifo_len) % d->fifo_cap;
	d->fifo[tail].node = (uint32_t)(n->ino - INO_FIRST_FILE);
	d->fifo[tail].page = page;
	d->fifo_len++;
	d->kc_bytes += page_len(n, page);
	if (d->kc_bytes > d->kc_budget)
		evict_locked(d);
}

/*
 * Remember that the kernel may now cache pages [first_page, last_page] of a
 * view (a READ reply or WRITE covered them), invalidating the oldest pages
 * beyond the budget.
 */
void kc_note(struct daemon *d, struct node *n, uint64_t first_page, uint64_t last_page)
{
	pthread_mutex_lock(&d->kc_lock);
	for (uint64_t p = first_page; p <= last_page; p++)
		note_locked(d, n, p);
	pthread_mutex_unlock(&d->kc_lock);
}

/*
 * Queue a push of the page of a view at `off` (`len` bytes): after a fill
 * (kc_filled) and after a READ reply.  Unless every block of it is already in
 * the kernel (or on its way), the notifier pushes it, so that the kernel holds the
 * whole application page and the next fault anywhere in it is a cache hit,
 * whether the page was filled for a fault, by prefetch, or is served again
 * after a READ of a few blocks.  Writable views are never pushed: the kernel
 * may hold newer dirty bytes for parts of the page, and a push would
 * overwrite them.
 */
void kc_push(struct node *n, uint64_t off, size_t len, int from_read)
{
	struct daemon *d = n->d;
	if (n->writable || !d->push)
		return;
	uint64_t page = off / n->page_size;
	/* the sequential marker page waits for its READ (see struct seq_state) */
	if (!from_read && atomic_load_explicit(&n->seq.marker, memory_order_relaxed) == page)
		return;
	struct kc_event *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return;
	pthread_mutex_lock(&d->kc_lock);
	if (d->kc_stop || kb_test(&n->kfull, page)) {
		pthread_mutex_unlock(&d->kc_lock);
		free(ev);
		return;
	}
	ev->store = 1;
	ev->node = n;
	ev->off = off;
	ev->len = len;
	kb_set(&n->kfull, page, 1);
	enqueue_locked(d, ev);
	pthread_mutex_unlock(&d->kc_lock);
}

/* Engine hook: a page was filled. */
void kc_filled(void *arg, struct umapfs_view *v, uint64_t off, const void *data, size_t len)
{
	(void)v, (void)data;
	kc_push(arg, off, len, 0);
}

/* Is every block of the page in the kernel cache, or its push queued? */
int kc_pushed(struct daemon *d, struct node *n, uint64_t page)
{
	pthread_mutex_lock(&d->kc_lock);
	int r = kb_test(&n->kfull, page);
	pthread_mutex_unlock(&d->kc_lock);
	return r;
}

/*
 * How many pages of [first, end) are charged to the budget (the kernel may
 * cache them)?  *spare gets the bytes of budget free beyond what an eviction
 * may leave free (twice the slack, see evict_locked): free only because the
 * budget has never filled.  *backlog gets the bytes of pushes queued or
 * running.
 */
uint64_t kc_count(struct daemon *d, struct node *n, uint64_t first, uint64_t end, uint64_t *spare,
		  uint64_t *backlog)
{
	pthread_mutex_lock(&d->kc_lock);
	uint64_t c = kb_count(&n->kc, first, end);
	uint64_t used = d->kc_bytes + 2 * d->kc_slack;
	*spare = used < d->kc_budget ? d->kc_budget - used : 0;
	*backlog = d->push_backlog;
	pthread_mutex_unlock(&d->kc_lock);
	return c;
}

/*
 * Engine hook: a page leaves the staging buffer.  The kernel's copy is
 * governed by the mount budget, not by staging residency, so nothing is
 * dropped here; bytes the kernel holds dirty reach the engine later through
 * WRITE (kernel writeback, or the laundering an invalidation forces), which
 * refills the page from the backing files first, so nothing newer is lost.
 */
int kc_evicting(void *arg, struct umapfs_view *v, uint64_t off, void *data, size_t len)
{
	(void)arg, (void)v, (void)off, (void)data, (void)len;
	return 0;
}

/* Is a push of a page of [first, last] of n running on a notifier thread? */
static int push_running_locked(const struct daemon *d, const struct node *n, uint64_t first,
			       uint64_t last)
{
	for (unsigned i = 0; i < KC_THREADS; i++) {
		const struct kc_worker *w = &d->kc_workers[i];
		if (w->busy == n && w->busy_page >= first && w->busy_page <= last)
			return 1;
	}
	return 0;
}

static void *kc_main(void *arg)
{
	struct kc_worker *me = arg;
	struct daemon *d = me->d;
	char *chunk = NULL; /* a push's bytes on their way into the kernel */
	unsigned inval_run = 0;
	pthread_mutex_lock(&d->kc_lock);
	/*
	 * The first thread runs invalidations and pushes, the others pushes
	 * only: invalidations stay in order, and those of dirty pages (which
	 * make the kernel write them back first) never run side by side
	 * (two at once halved the sort through a writable mount).
	 */
	int pushes_only = me != &d->kc_workers[0];
	for (;;) {
		while (!d->q_head && (pushes_only || !d->inv_head) && !d->kc_stop)
			pthread_cond_wait(&d->kc_cond, &d->kc_lock);
		if (d->kc_stop)
			break;
		struct kc_event *ev;
		/*
		 * Invalidations first (the budget must not wait behind a backlog
		 * of pushes), but one push after every INVAL_RUN of them: when
		 * every READ over the budget queues an invalidation, pushes would
		 * otherwise never run and every fault would become a READ.
		 */
		if (!pushes_only && d->inv_head && (inval_run < INVAL_RUN || !d->q_head)) {
			inval_run++;
			ev = d->inv_head;
			d->inv_head = ev->next;
			if (!d->inv_head)
				d->inv_tail = NULL;
		} else {
			inval_run = 0;
			ev = d->q_head;
			d->q_head = ev->next;
			if (!d->q_head)
				d->q_tail = NULL;
		}
		struct node *n = ev->node;
		/* a page dropped from the budget since its push was queued */
		if (ev->store && !kb_test(&n->kfull, ev->off / n->page_size))
			ev->cancelled = 1;
		if (ev->store && !ev->cancelled) {
			note_locked(d, n, ev->off / n->page_size);
			me->busy = n;
			me->busy_page = ev->off / n->page_size;
		}
		if (!ev->store)
			while (!d->kc_stop && push_running_locked(d, n, ev->off / n->page_size,
								  (ev->off + ev->len - 1) / n->page_size))
				pthread_cond_wait(&d->kc_done, &d->kc_lock);
		pthread_mutex_unlock(&d->kc_lock);

		int ret;
		if (ev->store && ev->cancelled) {
			ret = 0;
		} else if (ev->store) {
			/*
			 * Copied chunk by chunk out of the engine (refilled if it
			 * was evicted meanwhile) and pushed with no pin held: the
			 * push waits for the kernel's folio locks, which a READ
			 * holds until its reply, and that READ may be waiting for
			 * staging room a pin held here would take (with a staging
			 * buffer of one page it always did: a READ over two pages
			 * waited for the only frame, pinned by the push waiting
			 * for that READ's folios).
			 */
			if (!chunk)
				chunk = malloc(STORE_CHUNK);
			ret = chunk ? 0 : -ENOMEM;
			for (uint64_t o = 0; o < ev->len && ret == 0; o += STORE_CHUNK) {
				size_t l = ev->len - o < STORE_CHUNK ? ev->len - o : STORE_CHUNK;
				ssize_t r = umapfs_view_read(n->view, chunk, l, ev->off + o);
				if (r != (ssize_t)l) {
					ret = r < 0 ? (int)r : -EIO;
					break;
				}
				struct fuse_bufvec bv = FUSE_BUFVEC_INIT(l);
				bv.buf[0].mem = chunk;
				ret = fuse_lowlevel_notify_store(d->se, n->ino, ev->off + o, &bv, 0);
			}
			if (ret == 0) {
				atomic_fetch_add(&d->c.stores, 1);
				atomic_fetch_add(&d->c.store_bytes, ev->len);
			}
		} else {
			ret = fuse_lowlevel_notify_inval_inode(d->se, n->ino, (off_t)ev->off,
							       (off_t)ev->len);
			if (ret == 0) {
				atomic_fetch_add(&d->c.invals, 1);
				atomic_fetch_add(&d->c.inval_bytes, ev->len);
			}
		}
		/* -ENOENT: the kernel does not know the inode (never looked up). */
		if (ret < 0 && ret != -ENOENT)
			dlog(UMAPFS_LOG_DEBUG, "%s: notify_%s at %llu: %s", n->name,
			     ev->store ? "store" : "inval", (unsigned long long)ev->off,
			     strerror(-ret));

		pthread_mutex_lock(&d->kc_lock);
		if (me->busy) {
			me->busy = NULL;
			pthread_cond_broadcast(&d->kc_done);
		}
		if (ev->store)
			d->push_backlog -= ev->len;
		if (ev->store && ret < 0 && !ev->cancelled)
			kb_set(&n->kfull, ev->off / n->page_size, 0); /* a later READ pushes again */
		free(ev);
	}
	pthread_mutex_unlock(&d->kc_lock);
	free(chunk);
	return NULL;
}

/*
 * Set up the budget FIFO once the views are known.
 * Returns 0 or -ENOMEM.
 */
int kc_init(struct daemon *d)
{
	uint64_t min_ps = UMAPFS_MAX_PAGE_SIZE, max_ps = UMAPFS_MIN_PAGE_SIZE;
	int any_ro = 0;
	for (size_t i = 0; i < d->n_nodes; i++) {
		struct node *n = d->nodes[i];
		if (n->kind != NODE_VIEW)
			continue;
		if (n->page_size < min_ps)
			min_ps = n->page_size;
		if (n->page_size > max_ps)
			max_ps = n->page_size;
		any_ro |= !n->writable;
	}
	d->kc_budget = d->opt.buffer_size;
	if (d->kc_budget < max_ps)
		d->kc_budget = max_ps;
	uint64_t cap = d->kc_budget / min_ps + 2;
	if (cap > (UINT64_C(1) << 24))
		cap = UINT64_C(1) << 24;
	d->fifo_cap = (size_t)cap;
	d->fifo = calloc(d->fifo_cap, sizeof(*d->fifo));
	if (!d->fifo)
		return -ENOMEM;
	/* an eighth of the budget, at most 8 MiB, dropped at a time (none below 4 pages) */
	d->kc_slack = d->kc_budget / 8 < (UINT64_C(8) << 20) ? d->kc_budget / 8 : UINT64_C(8) << 20;
	if (d->kc_slack < 4 * max_ps)
		d->kc_slack = 0;
	d->batch_cap = (size_t)(d->kc_slack / min_ps) + 1;
	d->batch = calloc(2 * d->batch_cap, sizeof(*d->batch));
	if (!d->batch)
		return -ENOMEM;

	d->push = any_ro;
	return 0;
}

int kc_start(struct daemon *d)
{
	for (unsigned i = 0; i < KC_THREADS; i++) {
		struct kc_worker *w = &d->kc_workers[i];
		w->d = d;
		w->busy = NULL;
		int ret = pthread_create(&w->thread, NULL, kc_main, w);
		if (ret) {
			kc_stop(d);
			return -ret;
		}
		d->kc_running = (int)i + 1;
	}
	return 0;
}

/* Stop the notifier threads; queued events are dropped. */
void kc_stop(struct daemon *d)
{
	pthread_mutex_lock(&d->kc_lock);
	d->kc_stop = 1;
	pthread_cond_broadcast(&d->kc_cond);
	pthread_cond_broadcast(&d->kc_done);
	pthread_mutex_unlock(&d->kc_lock);
	for (int i = 0; i < d->kc_running; i++)
		pthread_join(d->kc_workers[i].thread, NULL);
	d->kc_running = 0;
	while (d->q_head) {
		struct kc_event *ev = d->q_head;
		d->q_head = ev->next;
		free(ev);
	}
	d->q_tail = NULL;
	while (d->inv_head) {
		struct kc_event *ev = d->inv_head;
		d->inv_head = ev->next;
		free(ev);
	}
	d->inv_tail = NULL;
}

void kc_fini(struct daemon *d)
{
	free(d->fifo);
	d->fifo = NULL;
	free(d->batch);
	d->batch = NULL;
}

/*
 * Set the mount's kernel readahead window (bdi read_ahead_kb).  libfuse can
 * only lower it at INIT, so it is raised here, once, from the first request
 * after INIT (writing sysfs does not touch the mount).
 */
void apply_readahead(struct daemon *d)
{
	if (!d->bdi[0] || atomic_exchange(&d->bdi_done, 1))
		return;
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", d->bdi);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		dlog(UMAPFS_LOG_INFO, "cannot set %s: %s (kernel readahead stays at its default)",
		     path, strerror(errno));
		return;
	}
	char buf[32];
	int l = snprintf(buf, sizeof(buf), "%llu\n",
			 (unsigned long long)(d->opt.readahead / 1024));
	if (write(fd, buf, (size_t)l) != l)
		dlog(UMAPFS_LOG_INFO, "cannot set %s: %s", path, strerror(errno));
	else
		dlog(UMAPFS_LOG_DEBUG, "%s = %s", path, buf);
	close(fd);
}
