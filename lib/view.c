/*
 * Views and the page table.
 *
 * The page table is NSHARDS hash tables, each with its own mutex and
 * condition variable.  A hit takes only its shard's lock and pins the page
 * by CAS; a miss inserts a FILLING page that later readers of the same page
 * wait on (one fill per page), reserves budget, fills and publishes.
 * Budget is always reserved while the thread holds no claim on a FILLING
 * page, so a thread blocked on the budget never blocks the fill of a page
 * another thread waits for.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine_i.h"

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return x;
}

struct shard *page_shard(struct umapfs_engine *e, const struct umapfs_view *v, uint64_t idx,
			 uint64_t *hash)
{
	uint64_t h = mix64(v->id * UINT64_C(0x9e3779b97f4a7c15) ^ idx);
	*hash = h >> 8;
	return &e->shards[h & (NSHARDS - 1)];
}

static struct page *shard_lookup(struct shard *s, uint64_t h, const struct umapfs_view *v,
				 uint64_t idx)
{
	if (!s->nbuckets)
		return NULL;
	for (struct page *p = s->buckets[h & (s->nbuckets - 1)]; p; p = p->hnext)
		if (p->view == v && p->index == idx)
			return p;
	return NULL;
}

static uint64_t page_hash(const struct page *p)
{
	uint64_t h = mix64(p->view->id * UINT64_C(0x9e3779b97f4a7c15) ^ p->index);
	return h >> 8;
}

/* Insert into the shard (lock held); grows the table.  Returns 0 or -ENOMEM. */
static int shard_insert(struct shard *s, struct page *p, uint64_t h)
{
	if (s->count + 1 > s->nbuckets) {
		size_t nb = s->nbuckets ? s->nbuckets * 2 : 16;
		struct page **b = calloc(nb, sizeof(*b));
		if (!b) {
			if (!s->nbuckets)
				return -ENOMEM;
		} else {
			for (size_t i = 0; i < s->nbuckets; i++) {
				struct page *q = s->buckets[i];
				while (q) {
					struct page *nx = q->hnext;
					size_t j = page_hash(q) & (nb - 1);
					q->hnext = b[j];
					b[j] = q;
					q = nx;
				}
			}
			free(s->buckets);
			s->buckets = b;
			s->nbuckets = nb;
		}
	}
	size_t j = h & (s->nbuckets - 1);
	p->hnext = s->buckets[j];
	s->buckets[j] = p;
	s->count++;
	return 0;
}

static void shard_remove(struct shard *s, struct page *p)
{
	struct page **pp = &s->buckets[page_hash(p) & (s->nbuckets - 1)];
	while (*pp && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = p->hnext;
		s->count--;
	}
	p->hnext = NULL;
}

static bool try_pin(struct page *p)
{
	int c = atomic_load(&p->pins);
	while (c >= 0)
		if (atomic_compare_exchange_weak(&p->pins, &c, c + 1))
			return true;
	return false;
}

static size_t page_len(const struct umapfs_view *v, uint64_t idx)
{
	uint64_t start = idx << v->page_shift;
	uint64_t left = v->size - start;
	return left < v->page_size ? (size_t)left : (size_t)v->page_size;
}

/* Drop one pin of a resident page; wakes budget waiters when it was the last. */
void page_unpin(struct umapfs_engine *e, struct page *p)
{
	int prev = atomic_fetch_sub(&p->pins, 1);
	if (prev == 1 && atomic_load(&e->waiters))
		budget_wake(e);
}

void page_mark_dirty(struct umapfs_engine *e, struct page *p)
{
	if (!atomic_exchange(&p->dirty, true))
		atomic_fetch_add(&e->dirty_bytes, p->len);
}

/* Take a page's dirty bit for write-back; returns whether it was set. */
static bool page_take_dirty(struct umapfs_engine *e, struct page *p)
{
	if (atomic_exchange(&p->dirty, false)) {
		atomic_fetch_sub(&e->dirty_bytes, p->len);
		return true;
	}
	return false;
}

static void hooks_snapshot(struct umapfs_view *v, struct umapfs_view_hooks *h)
{
	pthread_mutex_lock(&v->lock);
	if (v->has_hooks)
		*h = v->hooks;
	else
		memset(h, 0, sizeof(*h));
	pthread_mutex_unlock(&v->lock);
}

/*
 * A claimed page (pins == PIN_EVICT, off the policy list) leaves the buffer:
 * the front end is told (`evicting`), a dirty page is written back, then the
 * page is unlinked and freed.  With `evict` (budget eviction) a refusal by
 * the hook or a failed write-back keeps the page: it goes back to the policy
 * unclaimed and the error is returned.  Without `evict` (view destroy) the
 * page leaves regardless and the write-back error is returned.
 */
int page_retire(struct umapfs_engine *e, struct page *p, bool evict, void **frame)
{
	struct umapfs_view *v = p->view;
	struct umapfs_view_hooks h;
	uint64_t hash;
	struct shard *s = page_shard(e, v, p->index, &hash);
	int ret = 0;

	hooks_snapshot(v, &h);
	if (h.evicting) {
		int r = h.evicting(h.arg, v, p->offset, p->data, p->len);
		if (r == 1 && v->writable)
			page_mark_dirty(e, p);
		else if (r < 0 && evict)
			ret = -EAGAIN;
	}
	if (!ret && page_take_dirty(e, p)) {
		ret = io_writeback_page(v, p);
		if (ret < 0) {
			page_mark_dirty(e, p);
			atomic_fetch_add(&e->writeback_errors, 1);
			elog(e, UMAPFS_LOG_ERR, "%s: write-back of page at offset %llu failed: %s",
			     v->name, (unsigned long long)p->offset, strerror(-ret));
		} else {
			atomic_fetch_add(&e->writebacks, 1);
		}
		if (ret < 0 && !evict) {
			/* destroy: the page goes anyway, its bytes are lost */
			page_take_dirty(e, p);
		}
	}
	if (ret < 0 && evict) {
		pthread_mutex_lock(&e->policy_lock);
		e->policy.ops->insert(&e->policy, p);
		pthread_mutex_unlock(&e->policy_lock);
		pthread_mutex_lock(&s->lock);
		atomic_store(&p->pins, 0);
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		return ret;
	}
	pthread_mutex_lock(&s->lock);
	shard_remove(s, p);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (evict)
		atomic_fetch_add(&e->evictions, 1);
	if (frame) {
		*frame = p->data; /* the charge goes with it */
	} else {
		frame_free(p->data, p->charge);
		budget_release(e, p->charge);
	}
	free(p);
	return ret;
}

/*
 * Publish the outcome of a fill (err == 0: resident) and wake its waiters.
 * The caller's pin stays on success; on failure the page is dropped.
 */
static void fill_finish(struct umapfs_view *v, struct page *p, int err, bool counted)
{
	struct umapfs_engine *e = v->e;
	uint64_t hash;
	struct shard *s = page_shard(e, v, p->index, &hash);

	if (err) {
		void *data = p->data;
		uint64_t charge = p->charge;
		if (counted)
			atomic_fetch_add(&e->fill_errors, 1);
		pthread_mutex_lock(&s->lock);
		p->data = NULL;
		p->charge = 0;
		p->state = PAGE_FAILED;
		p->err = err;
		shard_remove(s, p);
		pthread_cond_broadcast(&s->cond);
		/* waiters free the page when they drop the last pin: no touching p after unlock */
		int left = atomic_fetch_sub(&p->pins, 1) - 1;
		pthread_mutex_unlock(&s->lock);
		frame_free(data, charge);
		budget_release(e, charge);
		if (!left)
			free(p);
		return;
	}
	if (counted) {
		atomic_fetch_add(&e->fills, 1);
		hist_add(&e->fill_hist, now_ns() - p->fill_start_ns);
	}
	pthread_mutex_lock(&s->lock);
	p->state = PAGE_RESIDENT;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&e->policy_lock);
	e->policy.ops->insert(&e->policy, p);
	pthread_mutex_unlock(&e->policy_lock);

	struct umapfs_view_hooks h;
	hooks_snapshot(v, &h);
	if (h.filled)
		h.filled(h.arg, v, p->offset, p->data, p->len);
}

/* Wait (shard lock held) for an in-flight page we pinned.  Returns 0 or its error. */
static int wait_inflight(struct shard *s, struct page *p)
{
	while (p->state == PAGE_FILLING)
		pthread_cond_wait(&s->cond, &s->lock);
	if (p->state == PAGE_RESIDENT)
		return 0;
	int err = p->err;
	if (atomic_fetch_sub(&p->pins, 1) == 1)
		free(p);
	return err;
}

static struct page *page_new(struct umapfs_view *v, uint64_t idx, uint64_t charge)
{
	struct page *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->view = v;
	p->index = idx;
	p->offset = idx << v->page_shift;
	p->len = page_len(v, idx);
	p->charge = charge;
	p->state = PAGE_FILLING;
	atomic_store(&p->pins, 1);
	return p;
}

/*
 * Return the page `idx` of v pinned, filling it if missing.  With
 * `whole_src` a missing page is not read: its bytes are copied from
 * whole_src (a write covering the whole page) and it is marked dirty.
 * Returns 0 or -errno.
 */
int page_get(struct umapfs_view *v, uint64_t idx, const void *whole_src, bool count,
	     struct page **out)
{
	struct umapfs_engine *e = v->e;
	uint64_t h;
	struct shard *s = page_shard(e, v, idx, &h);
	uint64_t charge = 0;
	void *frame = NULL;
	struct page *p;
	int ret;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		p = shard_lookup(s, h, v, idx);
		if (p && p->state == PAGE_RESIDENT) {
			if (try_pin(p)) {
				if (!charge && count)
					s->hits++;
				pthread_mutex_unlock(&s->lock);
				if (charge) {
					frame_free(frame, charge);
					budget_release(e, charge);
				}
				e->policy.ops->touch(&e->policy, p);
				*out = p;
				return 0;
			}
			/* claimed by an evictor: wait until it leaves or stays */
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		if (p) { /* FILLING */
			atomic_fetch_add(&p->pins, 1);
			if (!charge && count)
				s->misses++;
			ret = wait_inflight(s, p);
			pthread_mutex_unlock(&s->lock);
			if (charge) {
				frame_free(frame, charge);
				budget_release(e, charge);
			}
			if (ret)
				return ret;
			*out = p;
			return 0;
		}
		if (charge)
			break;
		/* Missing: reserve budget holding no claim, then look again. */
		if (count)
			s->misses++;
		pthread_mutex_unlock(&s->lock);
		charge = round_up(page_len(v, idx), IO_ALIGN);
		ret = budget_reserve(e, charge, false, &frame);
		if (ret < 0)
			return ret;
		pthread_mutex_lock(&s->lock);
	}
	p = page_new(v, idx, charge);
	if (!p || shard_insert(s, p, h) < 0) {
		pthread_mutex_unlock(&s->lock);
		free(p);
		frame_free(frame, charge);
		budget_release(e, charge);
		return -ENOMEM;
	}
	pthread_mutex_unlock(&s->lock);

	p->fill_start_ns = now_ns();
	p->data = frame;
	if (!p->data && !(p->data = frame_alloc(charge))) {
		p->data = NULL;
		fill_finish(v, p, -ENOMEM, false);
		return -ENOMEM;
	}
	if (whole_src) {
		memcpy(p->data, whole_src, p->len);
		page_mark_dirty(e, p);
		fill_finish(v, p, 0, false);
	} else {
		int err = 0;
		io_fill_pages(v, &p, 1, &err, NULL, NULL);
		fill_finish(v, p, err, true);
		if (err)
			return err;
	}
	*out = p;
	return 0;
}

/* pages_fill_range's batch: each page is published the moment it is filled. */
struct range_batch {
	struct umapfs_view *v;
	struct page **pages;
	int ret; /* the first error */
};

static void range_page_done(void *arg, size_t i, int err)
{
	struct range_batch *rb = arg;
	fill_finish(rb->v, rb->pages[i], err, true);
	if (err && !rb->ret)
		rb->ret = err;
	if (!err)
		page_unpin(rb->v->e, rb->pages[i]);
}

/*
 * Make pages [first, first+n) resident without keeping them pinned, filling
 * the missing ones in batches (one io_uring submission per batch; each page
 * is published, and its waiters woken, as soon as its own reads land).  Budget
 * for a batch is reserved without waiting while the batch holds claims; a
 * full buffer submits the batch first.  Pages in flight elsewhere are waited
 * for at the end.  Returns 0 or the first error.
 */
int pages_fill_range(struct umapfs_view *v, uint64_t first, uint64_t n, bool nowait_first,
		     bool count)
{
	struct umapfs_engine *e = v->e;
	size_t cap = e->cfg.queue_depth < 64 ? e->cfg.queue_depth : 64;
	struct page **batch = calloc(cap, sizeof(*batch));
	int *errs = calloc(cap, sizeof(*errs));
	uint64_t *foreign = NULL;
	size_t nb = 0, nf = 0, ff = 0;
	int ret = 0;
	struct range_batch rb = { .v = v, .pages = batch };

	if (!batch || !errs) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; i < n && !ret; i++) {
		uint64_t idx = first + i, h;
		struct shard *s = page_shard(e, v, idx, &h);
		uint64_t charge = round_up(page_len(v, idx), IO_ALIGN);

		pthread_mutex_lock(&s->lock);
		struct page *p = shard_lookup(s, h, v, idx);
		if (p) {
			bool inflight = p->state == PAGE_FILLING;
			if (count) {
				if (inflight)
					s->misses++;
				else
					s->hits++;
			}
			pthread_mutex_unlock(&s->lock);
			if (inflight) {
				if (nf == ff) {
					uint64_t *nfo = realloc(foreign, (ff = ff ? 2 * ff : 16) * sizeof(*nfo));
					if (!nfo) {
						ret = -ENOMEM;
						break;
					}
					foreign = nfo;
				}
				foreign[nf++] = idx;
			}
			continue;
		}
		pthread_mutex_unlock(&s->lock);

		void *frame = NULL;
		int r = budget_reserve(e, charge, nb > 0 || nowait_first, &frame);
		if (r == -EAGAIN && nb > 0) {
			io_fill_pages(v, batch, nb, errs, range_page_done, &rb);
			ret = ret ? ret : rb.ret;
			nb = 0;
			r = budget_reserve(e, charge, false, &frame);
		}
		if (r < 0) {
			if (!ret)
				ret = r;
			break;
		}
		pthread_mutex_lock(&s->lock);
		if (shard_lookup(s, h, v, idx)) { /* raced: someone else has it */
			pthread_mutex_unlock(&s->lock);
			frame_free(frame, charge);
			budget_release(e, charge);
			i--; /* look again: resident, or in flight to wait for */
			continue;
		}
		p = page_new(v, idx, charge);
		if (!p || shard_insert(s, p, h) < 0) {
			pthread_mutex_unlock(&s->lock);
			free(p);
			frame_free(frame, charge);
			budget_release(e, charge);
			ret = -ENOMEM;
			break;
		}
		if (count)
			s->misses++;
		pthread_mutex_unlock(&s->lock);
		p->fill_start_ns = now_ns();
		p->data = frame;
		if (!p->data && !(p->data = frame_alloc(charge))) {
			p->data = NULL;
			fill_finish(v, p, -ENOMEM, false);
			ret = -ENOMEM;
			break;
		}
		batch[nb++] = p;
		if (nb == cap) {
			io_fill_pages(v, batch, nb, errs, range_page_done, &rb);
			ret = ret ? ret : rb.ret;
			nb = 0;
		}
	}
	if (nb) {
		io_fill_pages(v, batch, nb, errs, range_page_done, &rb);
		ret = ret ? ret : rb.ret;
	}
	/* Pages that were in flight elsewhere: wait (refilling if they failed or left). */
	for (size_t k = 0; k < nf && !ret; k++) {
		struct page *p;
		int r = page_get(v, foreign[k], NULL, false, &p);
		if (r < 0)
			ret = r;
		else
			page_unpin(e, p);
	}
out:
	free(batch);
	free(errs);
	free(foreign);
	return ret;
}

/* ---- public view API ---- */

/* Zero a description and set its struct_size. */
UMAPFS_EXPORT void umapfs_view_desc_init(struct umapfs_view_desc *d)
{
	if (!d)
		return;
	memset(d, 0, sizeof(*d));
	d->struct_size = sizeof(*d);
}

static void view_free(struct umapfs_view *v)
{
	for (size_t i = 0; i < v->n_files; i++) {
		if (v->files[i].fd >= 0)
			close(v->files[i].fd);
		if (v->files[i].bfd >= 0)
			close(v->files[i].bfd);
		free(v->files[i].path);
	}
	free(v->files);
	for (size_t i = 0; i < v->n_ext; i++)
		free(v->ext[i].data);
	free(v->ext);
	pthread_mutex_destroy(&v->lock);
	pthread_mutex_destroy(&v->flush_lock);
	free(v->name);
	free(v);
}

/* Open a backing file (O_DIRECT if possible) and record it; returns its index or -errno. */
static int view_open_file(struct umapfs_view *v, const char *path)
{
	struct umapfs_engine *e = v->e;
	int acc = v->writable ? O_RDWR : O_RDONLY;

	for (size_t i = 0; i < v->n_files; i++)
		if (strcmp(v->files[i].path, path) == 0)
			return (int)i;
	struct vfile *nf = realloc(v->files, (v->n_files + 1) * sizeof(*nf));
	if (!nf)
		return -ENOMEM;
	v->files = nf;
	struct vfile *f = &v->files[v->n_files];
	memset(f, 0, sizeof(*f));
	f->fd = f->bfd = -1;
	f->path = strdup(path);
	if (!f->path)
		return -ENOMEM;
	v->n_files++;

	int fd = e->sys.open(e->sys.arg, path, acc | O_DIRECT | O_CLOEXEC, 0);
	if (fd == -EINVAL) {
		fd = e->sys.open(e->sys.arg, path, acc | O_CLOEXEC, 0);
		if (fd >= 0 && warn_once(e, path))
			elog(e, UMAPFS_LOG_NOTICE,
			     "%s: %s: file system refuses O_DIRECT; using buffered I/O", v->name,
			     path);
	} else if (fd >= 0) {
		f->direct = true;
	}
	if (fd < 0) {
		elog(e, UMAPFS_LOG_ERR, "%s: cannot open %s: %s", v->name, path, strerror(-fd));
		return fd;
	}
	f->fd = fd;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int err = -errno;
		elog(e, UMAPFS_LOG_ERR, "%s: cannot stat %s: %s", v->name, path, strerror(-err));
		return err;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		elog(e, UMAPFS_LOG_ERR, "%s: %s is not a regular file", v->name, path);
		return -EINVAL;
	}
	f->size = (uint64_t)st.st_size;
	if (v->writable && f->direct) {
		int b = e->sys.open(e->sys.arg, path, acc | O_CLOEXEC, 0);
		if (b < 0) {
			elog(e, UMAPFS_LOG_ERR, "%s: cannot open %s: %s", v->name, path,
			     strerror(-b));
			return b;
		}
		f->bfd = b;
	}
	return (int)(v->n_files - 1);
}

static unsigned log2u64(uint64_t x) { return 63u - (unsigned)__builtin_clzll(x); }

/*
 * Create a view from a description (extents or ops, not both).  Checks that
 * the extents' lengths sum to the size, opens each distinct backing file
 * once and checks every FILE extent lies within its file.  Returns 0 and
 * the view in *out; -EINVAL for an inconsistent description, the open error
 * (-ENOENT, -EACCES, ...) for a backing file, -ERANGE for an extent past the
 * end of its file, -ENOMEM.  Every failure is logged with its reason.
 */
UMAPFS_EXPORT int umapfs_view_create(struct umapfs_engine *e, const struct umapfs_view_desc *dd,
				     struct umapfs_view **out)
{
	struct umapfs_view_desc d;
	struct umapfs_view *v = NULL;
	int ret = -EINVAL;

	if (!e || !dd || !out)
		return -EINVAL;
	*out = NULL;
	if (dd->struct_size < offsetof(struct umapfs_view_desc, ops_arg) + sizeof(void *) &&
	    dd->struct_size < offsetof(struct umapfs_view_desc, n_extents) + sizeof(size_t)) {
		elog(e, UMAPFS_LOG_ERR, "view description: bad struct_size %zu", dd->struct_size);
		return -EINVAL;
	}
	memset(&d, 0, sizeof(d));
	memcpy(&d, dd, dd->struct_size < sizeof(d) ? dd->struct_size : sizeof(d));
	const char *name = d.name ? d.name : "(unnamed view)";

	uint64_t ps = d.page_size ? d.page_size : e->cfg.page_size;
	if (ps < UMAPFS_MIN_PAGE_SIZE || ps > UMAPFS_MAX_PAGE_SIZE || (ps & (ps - 1))) {
		elog(e, UMAPFS_LOG_ERR, "%s: page size %llu is not a power of two in [4 KiB, 64 MiB]",
		     name, (unsigned long long)ps);
		return -EINVAL;
	}
	if (ps > e->cfg.buffer_size) {
		elog(e, UMAPFS_LOG_ERR, "%s: page size %llu exceeds the buffer (%llu)", name,
		     (unsigned long long)ps, (unsigned long long)e->cfg.buffer_size);
		return -EINVAL;
	}
	if (d.size > UMAPFS_MAX_VIEW_SIZE) {
		elog(e, UMAPFS_LOG_ERR, "%s: size %llu exceeds 2^48", name, (unsigned long long)d.size);
		return -EINVAL;
	}
	if (d.flags & ~UMAPFS_VIEW_WRITABLE) {
		elog(e, UMAPFS_LOG_ERR, "%s: unknown flags 0x%x", name, d.flags);
		return -EINVAL;
	}
	if ((d.ops != NULL) == (d.n_extents > 0 || d.extents != NULL)) {
		elog(e, UMAPFS_LOG_ERR, "%s: a view needs either extents or ops (exactly one)", name);
		return -EINVAL;
	}
	if (d.n_extents && !d.extents) {
		elog(e, UMAPFS_LOG_ERR, "%s: n_extents %zu but no extents", name, d.n_extents);
		return -EINVAL;
	}

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	pthread_mutex_init(&v->lock, NULL);
	pthread_mutex_init(&v->flush_lock, NULL);
	v->e = e;
	v->name = strdup(name);
	if (!v->name) {
		ret = -ENOMEM;
		goto fail;
	}
	v->size = d.size;
	v->page_size = ps;
	v->page_shift = log2u64(ps);
	v->writable = d.flags & UMAPFS_VIEW_WRITABLE;
	v->id = atomic_fetch_add(&e->next_view_id, 1) + 1;

	if (d.ops) {
		struct umapfs_view_ops o;
		memset(&o, 0, sizeof(o));
		if (d.ops->struct_size < offsetof(struct umapfs_view_ops, fill) + sizeof(void *)) {
			elog(e, UMAPFS_LOG_ERR, "%s: ops: bad struct_size %zu", name, d.ops->struct_size);
			goto fail;
		}
		memcpy(&o, d.ops, d.ops->struct_size < sizeof(o) ? d.ops->struct_size : sizeof(o));
		if (!o.fill) {
			elog(e, UMAPFS_LOG_ERR, "%s: ops without a fill function", name);
			goto fail;
		}
		if (v->writable && !o.writeback) {
			elog(e, UMAPFS_LOG_ERR, "%s: writable view whose ops have no writeback", name);
			goto fail;
		}
		v->has_ops = true;
		v->ops = o;
		v->ops_arg = d.ops_arg;
	} else {
		uint64_t pos = 0;
		v->ext = calloc(d.n_extents, sizeof(*v->ext));
		if (!v->ext) {
			ret = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < d.n_extents; i++) {
			const struct umapfs_extent *x = &d.extents[i];
			if (!x->length)
				continue;
			if (x->length > UMAPFS_MAX_VIEW_SIZE || pos + x->length > d.size) {
				elog(e, UMAPFS_LOG_ERR, "%s: extents are longer than the view (%llu bytes)",
				     name, (unsigned long long)d.size);
				goto fail;
			}
			struct vext *ve = &v->ext[v->n_ext];
			ve->kind = x->kind;
			ve->start = pos;
			ve->length = x->length;
			ve->file = -1;
			switch (x->kind) {
			case UMAPFS_EXTENT_FILE: {
				if (!x->path || !*x->path) {
					elog(e, UMAPFS_LOG_ERR, "%s: extent %zu: FILE extent without a path",
					     name, i);
					goto fail;
				}
				int fi = view_open_file(v, x->path);
				if (fi < 0) {
					ret = fi;
					goto fail;
				}
				struct vfile *f = &v->files[fi];
				if (x->file_offset > f->size || x->length > f->size - x->file_offset) {
					elog(e, UMAPFS_LOG_ERR,
					     "%s: extent %zu lies past the end of %s (offset %llu + length %llu > size %llu)",
					     name, i, x->path, (unsigned long long)x->file_offset,
					     (unsigned long long)x->length, (unsigned long long)f->size);
					ret = -ERANGE;
					goto fail;
				}
				ve->file = fi;
				ve->file_offset = x->file_offset;
				break;
			}
			case UMAPFS_EXTENT_MEMORY:
				if (!x->data) {
					elog(e, UMAPFS_LOG_ERR, "%s: extent %zu: MEMORY extent without data",
					     name, i);
					goto fail;
				}
				ve->data = malloc(x->length);
				if (!ve->data) {
					ret = -ENOMEM;
					goto fail;
				}
				memcpy(ve->data, x->data, x->length);
				break;
			case UMAPFS_EXTENT_ZERO:
				break;
			default:
				elog(e, UMAPFS_LOG_ERR, "%s: extent %zu: unknown kind %d", name, i, x->kind);
				goto fail;
			}
			v->n_ext++;
			pos += x->length;
		}
		if (pos != d.size) {
			elog(e, UMAPFS_LOG_ERR, "%s: extents cover %llu bytes but the view has %llu", name,
			     (unsigned long long)pos, (unsigned long long)d.size);
			goto fail;
		}
	}
	atomic_fetch_add(&e->nviews, 1);
	*out = v;
	return 0;
fail:
	view_free(v);
	return ret;
}

/*
 * Destroy a view: cancel its queued prefetches and wait for running ones,
 * wait for its fills in flight and for pins to drop, tell the front end
 * (`evicting`), write back dirty pages, sync the backing files, free the
 * pages and close the files.  Returns 0 or the first write-back/sync error;
 * the view is gone either way.  An ops view's release() is called last.
 */
UMAPFS_EXPORT int umapfs_view_destroy(struct umapfs_view *v)
{
	if (!v)
		return -EINVAL;
	struct umapfs_engine *e = v->e;
	int ret = 0;
	bool wrote = false;

	atomic_store(&v->dying, true);
	prefetch_cancel_view(v);

	for (unsigned si = 0; si < NSHARDS; si++) {
		struct shard *s = &e->shards[si];
		pthread_mutex_lock(&s->lock);
		for (;;) {
			struct page *p = NULL, *busy = NULL;
			for (size_t b = 0; b < s->nbuckets && !p; b++)
				for (struct page *q = s->buckets[b]; q; q = q->hnext) {
					if (q->view != v)
						continue;
					int zero = 0;
					if (q->state == PAGE_RESIDENT &&
					    atomic_compare_exchange_strong(&q->pins, &zero, PIN_EVICT)) {
						p = q;
						break;
					}
					busy = q;
				}
			if (p) {
				pthread_mutex_unlock(&s->lock);
				pthread_mutex_lock(&e->policy_lock);
				e->policy.ops->remove(&e->policy, p);
				pthread_mutex_unlock(&e->policy_lock);
				bool dirty = atomic_load(&p->dirty);
				int r = page_retire(e, p, false, NULL);
				wrote |= dirty;
				if (r < 0 && !ret)
					ret = r;
				pthread_mutex_lock(&s->lock);
				continue;
			}
			if (!busy)
				break;
			/* in flight, pinned or being evicted: wait a little */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 5000000;
			if (ts.tv_nsec >= 1000000000)
				ts.tv_sec++, ts.tv_nsec -= 1000000000;
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		}
		pthread_mutex_unlock(&s->lock);
	}
	if (v->writable || wrote) {
		int r = io_sync_view(v);
		if (r < 0 && !ret)
			ret = r;
	}
	if (v->has_ops && v->ops.release)
		v->ops.release(v->ops_arg);
	atomic_fetch_sub(&e->nviews, 1);
	view_free(v);
	return ret;
}

/* The view's size in bytes. */
UMAPFS_EXPORT uint64_t umapfs_view_size(const struct umapfs_view *v) { return v ? v->size : 0; }

/* The view's page size in bytes. */
UMAPFS_EXPORT uint64_t umapfs_view_page_size(const struct umapfs_view *v)
{
	return v ? v->page_size : 0;
}

/* The view's name (never NULL for a valid view). */
UMAPFS_EXPORT const char *umapfs_view_name(const struct umapfs_view *v) { return v ? v->name : NULL; }

/* 1 when the view was created UMAPFS_VIEW_WRITABLE, else 0. */
UMAPFS_EXPORT int umapfs_view_writable(const struct umapfs_view *v) { return v && v->writable; }

/*
 * Copy up to len bytes at off into buf, filling missing pages (several
 * missing pages of one call are read in one batch).  Returns the bytes
 * copied (short only at the end of the view, 0 at or past it), or -errno:
 * -EIO when a backing read failed or came back short, -ENOSPC when the
 * calling thread's own pins leave no room for a page.
 */
UMAPFS_EXPORT ssize_t umapfs_view_read(struct umapfs_view *v, void *buf, size_t len, uint64_t off)
{
	if (!v || (!buf && len))
		return -EINVAL;
	if (off >= v->size || !len)
		return 0;
	if (len > v->size - off)
		len = (size_t)(v->size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	struct umapfs_engine *e = v->e;
	uint64_t last = (off + len - 1) >> v->page_shift;
	uint64_t room = e->cfg.buffer_size / v->page_size / 2;
	if (room > 64)
		room = 64;
	size_t done = 0;
	while (done < len) {
		uint64_t idx = (off + done) >> v->page_shift;
		uint64_t n = last - idx + 1;
		bool batched = false;
		if (n > room)
			n = room;
		if (n > 1 && !v->has_ops) {
			/* Several pages: their misses go out in one submission (best effort). */
			int r = pages_fill_range(v, idx, n, true, true);
			/* a full buffer only ends the batch; real errors fail the read */
			if (r < 0 && r != -EAGAIN && r != -ENOSPC && r != -ENOMEM)
				return r;
			batched = true;
		} else {
			n = 1;
		}
		for (uint64_t k = 0; k < n && done < len; k++) {
			uint64_t pos = off + done;
			size_t in = (size_t)(pos - ((idx + k) << v->page_shift));
			struct page *p;
			int r = page_get(v, idx + k, NULL, !batched, &p);
			if (r < 0)
				return r;
			size_t c = p->len - in;
			if (c > len - done)
				c = len - done;
			memcpy((char *)buf + done, (char *)p->data + in, c);
			page_unpin(e, p);
			done += c;
		}
	}
	return (ssize_t)done;
}

/*
 * Copy len bytes from buf into the view at off and mark the pages dirty;
 * pages the write covers completely are not read first.  Returns the bytes
 * written (short only at the end of the view), -EROFS for a read-only view,
 * -EFBIG when off is at or past the end (len > 0), or -errno of a fill.
 */
UMAPFS_EXPORT ssize_t umapfs_view_write(struct umapfs_view *v, const void *buf, size_t len,
					uint64_t off)
{
	if (!v || (!buf && len))
		return -EINVAL;
	if (!v->writable)
		return -EROFS;
	if (!len)
		return 0;
	if (off >= v->size)
		return -EFBIG;
	if (len > v->size - off)
		len = (size_t)(v->size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	struct umapfs_engine *e = v->e;
	size_t done = 0;
	while (done < len) {
		uint64_t pos = off + done, idx = pos >> v->page_shift;
		size_t in = (size_t)(pos - (idx << v->page_shift));
		size_t plen = page_len(v, idx);
		size_t n = plen - in;
		if (n > len - done)
			n = len - done;
		const char *src = (const char *)buf + done;
		struct page *p;
		int r = page_get(v, idx, (in == 0 && n == plen) ? src : NULL, true, &p);
		if (r < 0)
			return done ? (ssize_t)done : r;
		memcpy((char *)p->data + in, src, n);
		page_mark_dirty(e, p);
		page_unpin(e, p);
		done += n;
	}
	return (ssize_t)done;
}

/*
 * Write back every dirty page of v, then sync its backing files (or call
 * ops->sync).  Waits for pages another thread is evicting.  Returns 0 when
 * every byte written before the call is durable, else the first error
 * (pages that failed stay resident and dirty).
 */
UMAPFS_EXPORT int umapfs_view_flush(struct umapfs_view *v)
{
	if (!v)
		return -EINVAL;
	struct umapfs_engine *e = v->e;
	int ret = 0;
	struct page **list = NULL;
	size_t n = 0, cap = 0;

	/* One flush at a time per view, so a flush never returns before a write-back
	 * another flush started is synced. */
	pthread_mutex_lock(&v->flush_lock);
	for (unsigned si = 0; si < NSHARDS; si++) {
		struct shard *s = &e->shards[si];
		pthread_mutex_lock(&s->lock);
	rescan:
		for (size_t b = 0; b < s->nbuckets; b++)
			for (struct page *q = s->buckets[b]; q; q = q->hnext) {
				if (q->view != v || q->state != PAGE_RESIDENT)
					continue;
				if (atomic_load(&q->pins) < 0) {
					/* being evicted (maybe written back right now): wait for it */
					pthread_cond_wait(&s->cond, &s->lock);
					goto rescan;
				}
				if (!atomic_load(&q->dirty) || !try_pin(q))
					continue;
				if (n == cap) {
					struct page **nl = realloc(list, (cap = cap ? 2 * cap : 64) * sizeof(*nl));
					if (!nl) {
						page_unpin(e, q);
						pthread_mutex_unlock(&s->lock);
						ret = -ENOMEM;
						goto out;
					}
					list = nl;
				}
				list[n++] = q;
			}
		pthread_mutex_unlock(&s->lock);
	}
	/* Write back in batches: the O_DIRECT pieces of a batch go in one submission. */
	for (size_t i = 0; i < n;) {
		struct page *batch[64];
		int errs[64];
		size_t nb = 0;
		for (; i < n && nb < 64; i++)
			if (page_take_dirty(e, list[i]))
				batch[nb++] = list[i];
		if (!nb)
			continue;
		io_writeback_pages(v, batch, nb, errs);
		for (size_t k = 0; k < nb; k++) {
			struct page *p = batch[k];
			int r = errs[k];
			if (r < 0) {
				page_mark_dirty(e, p);
				atomic_fetch_add(&e->writeback_errors, 1);
				elog(e, UMAPFS_LOG_ERR, "%s: write-back of page at offset %llu failed: %s",
				     v->name, (unsigned long long)p->offset, strerror(-r));
				if (!ret)
					ret = r;
			} else {
				atomic_fetch_add(&e->writebacks, 1);
			}
		}
	}
	{
		int r = io_sync_view(v);
		if (r < 0 && !ret)
			ret = r;
	}
out:
	for (size_t i = 0; i < n; i++)
		page_unpin(e, list[i]);
	free(list);
	pthread_mutex_unlock(&v->flush_lock);
	return ret;
}

/*
 * Pin the page holding `off`, filling it first if needed; concurrent
 * pinners of one missing page share one fill.  Fills *ref.  Returns 0,
 * -EINVAL past the end, -ENOSPC when this thread's own pins already hold
 * the whole buffer, or the fill's -errno.
 */
UMAPFS_EXPORT int umapfs_view_pin(struct umapfs_view *v, uint64_t off, struct umapfs_page_ref *ref)
{
	if (!v || !ref || off >= v->size)
		return -EINVAL;
	struct page *p;
	int r = page_get(v, off >> v->page_shift, NULL, true, &p);
	if (r < 0)
		return r;
	ref->data = p->data;
	ref->offset = p->offset;
	ref->len = p->len;
	ref->priv = p;
	tl_pins_add(v->e, (int64_t)p->charge);
	return 0;
}

/*
 * Release a pin taken by umapfs_view_pin.  `dirty` marks the page dirty
 * when the view is writable (ignored otherwise).  The ref is cleared.
 */
UMAPFS_EXPORT void umapfs_view_unpin(struct umapfs_view *v, struct umapfs_page_ref *ref, int dirty)
{
	if (!v || !ref || !ref->priv)
		return;
	struct page *p = ref->priv;
	if (dirty && v->writable)
		page_mark_dirty(v->e, p);
	tl_pins_add(v->e, -(int64_t)p->charge);
	page_unpin(v->e, p);
	memset(ref, 0, sizeof(*ref));
}

/*
 * Install a copy of *h as the view's hooks, or remove them with NULL.
 * Hooks already running finish with the old copy.  Returns 0 (-EINVAL for
 * a NULL view or a bad struct_size).
 */
UMAPFS_EXPORT int umapfs_view_set_hooks(struct umapfs_view *v, const struct umapfs_view_hooks *h)
{
	if (!v)
		return -EINVAL;
	struct umapfs_view_hooks c;
	memset(&c, 0, sizeof(c));
	if (h) {
		if (h->struct_size < offsetof(struct umapfs_view_hooks, filled) + sizeof(void *))
			return -EINVAL;
		memcpy(&c, h, h->struct_size < sizeof(c) ? h->struct_size : sizeof(c));
	}
	pthread_mutex_lock(&v->lock);
	v->hooks = c;
	v->has_hooks = h != NULL;
	pthread_mutex_unlock(&v->lock);
	return 0;
}
