/*
 * Page I/O: fills and write-back.
 *
 * A fill reads every FILE piece of its pages with O_DIRECT through one
 * io_uring (one submission for all pieces of all pages in the batch, more
 * only when they exceed the ring).  A piece whose file offset, length or
 * place in the frame is not 4 KiB aligned reads the aligned superset into a
 * bounce buffer and copies the piece out.  Files on file systems that refuse
 * O_DIRECT are read with the seam's pread.  Every result passes through the
 * seam's `complete` before the engine looks at it.
 *
 * Write-back sends aligned pieces with O_DIRECT from the frame; unaligned
 * edges go through the file's buffered twin descriptor (fdatasync of either
 * covers both, as they are one inode).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"

struct piece {
	size_t page;  /* index into the batch */
	int fd;
	uint64_t foff; /* file offset of the request */
	size_t rlen;   /* bytes requested */
	size_t need;   /* bytes that must come back */
	size_t skip;   /* offset of the payload in the bounce */
	char *dst;     /* payload destination (fill) or source (write) */
	size_t l;      /* payload bytes */
	char *bounce;  /* aligned bounce, or NULL when dst is the I/O buffer */
	bool write;
};

struct plist {
	struct piece *v;
	size_t n, cap;
};

static struct piece *plist_add(struct plist *pl)
{
	if (pl->n == pl->cap) {
		size_t nc = pl->cap ? pl->cap * 2 : 16;
		struct piece *nv = realloc(pl->v, nc * sizeof(*nv));
		if (!nv)
			return NULL;
		pl->v = nv;
		pl->cap = nc;
	}
	struct piece *p = &pl->v[pl->n++];
	memset(p, 0, sizeof(*p));
	return p;
}

/* Index of the extent holding view offset pos (pos < size). */
static size_t find_ext(const struct umapfs_view *v, uint64_t pos)
{
	size_t lo = 0, hi = v->n_ext;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->ext[mid].start <= pos)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static inline bool aligned(uint64_t x) { return (x & (IO_ALIGN - 1)) == 0; }

/* Called as each piece completes, with its seam-filtered result. */
typedef void (*piece_done_fn)(void *arg, size_t i, int res);

/*
 * Run the io_uring pieces in pl: all are queued before the first wait (up to
 * the ring's size in flight).  res[i] gets each piece's seam-filtered result,
 * and done (if not NULL) is called with it as the piece completes.  Returns
 * 0, or -errno when the ring itself failed (res[] then holds that error for
 * the pieces that did not complete, and done gets it too).
 */
static int ring_run(struct umapfs_engine *e, struct ring_slot *rs, struct piece *pcs, size_t n,
		    int *res, piece_done_fn done, void *arg)
{
	int err = 0;
	size_t next = 0, inflight = 0;

	if (!n)
		return 0;
	if (!rs->has_ring) {
		/* No io_uring: the same requests, one by one, through the seam. */
		for (size_t i = 0; i < n; i++) {
			struct piece *p = &pcs[i];
			void *buf = p->bounce ? p->bounce : p->dst;
			ssize_t r = p->write ? e->sys.pwrite(e->sys.arg, p->fd, buf, p->rlen, (off_t)p->foff)
					     : e->sys.pread(e->sys.arg, p->fd, buf, p->rlen, (off_t)p->foff);
			res[i] = e->sys.complete(e->sys.arg, p->write, p->fd, p->foff, p->rlen,
						 r > INT_MAX ? INT_MAX : (int)r);
			if (done)
				done(arg, i, res[i]);
		}
		return 0;
	}
	while (next < n || inflight) {
		struct io_uring_sqe *sqe;
		while (next < n && inflight < e->cfg.queue_depth &&
		       (sqe = io_uring_get_sqe(&rs->ring))) {
			struct piece *p = &pcs[next];
			void *buf = p->bounce ? p->bounce : p->dst;
			if (p->write)
				io_uring_prep_write(sqe, p->fd, buf, (unsigned)p->rlen, p->foff);
			else
				io_uring_prep_read(sqe, p->fd, buf, (unsigned)p->rlen, p->foff);
			io_uring_sqe_set_data64(sqe, next);
			next++;
			inflight++;
		}
		int r = io_uring_submit_and_wait(&rs->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			/* Reap what already completed, then give up on the rest. */
			err = r;
			break;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&rs->ring, head, cqe) {
			size_t i = (size_t)io_uring_cqe_get_data64(cqe);
			struct piece *p = &pcs[i];
			res[i] = e->sys.complete(e->sys.arg, p->write, p->fd, p->foff, p->rlen, cqe->res);
			seen++;
			inflight--;
			if (done) /* touches no ring state: fine before the advance */
				done(arg, i, res[i]);
		}
		io_uring_cq_advance(&rs->ring, seen);
	}
	if (err) {
		elog(e, UMAPFS_LOG_ERR, "io_uring submit failed: %s", strerror(-err));
		for (size_t i = 0; i < n; i++)
			if (res[i] == INT_MIN) {
				res[i] = err;
				if (done)
					done(arg, i, err);
			}
	}
	return err;
}

/* Return a slot to the pool, or drop it when its ring failed (state unknown). */
static void slot_done(struct umapfs_engine *e, struct ring_slot *rs, int err)
{
	if (!err) {
		ring_put(e, rs);
		return;
	}
	if (rs->has_ring)
		io_uring_queue_exit(&rs->ring);
	frame_free(rs->bounce, rs->bounce_size);
	free(rs);
}

/* Build the fill pieces of one extent page; memory/zero/buffered parts done inline. */
static int plan_fill(struct umapfs_view *v, struct page *pg, size_t bi, struct plist *pl)
{
	struct umapfs_engine *e = v->e;
	uint64_t pos = pg->offset, end = pg->offset + pg->len;
	int ret = 0;

	for (size_t xi = find_ext(v, pos); pos < end && xi < v->n_ext; xi++) {
		const struct vext *x = &v->ext[xi];
		uint64_t in = pos - x->start;
		size_t l = (size_t)((x->start + x->length < end ? x->start + x->length : end) - pos);
		char *dst = (char *)pg->data + (pos - pg->offset);

		switch (x->kind) {
		case UMAPFS_EXTENT_ZERO:
			memset(dst, 0, l);
			break;
		case UMAPFS_EXTENT_MEMORY:
			memcpy(dst, x->data + in, l);
			break;
		case UMAPFS_EXTENT_FILE: {
			const struct vfile *f = &v->files[x->file];
			uint64_t fo = x->file_offset + in;
			if (!f->direct) {
				ssize_t r = e->sys.pread(e->sys.arg, f->fd, dst, l, (off_t)fo);
				int c = e->sys.complete(e->sys.arg, 0, f->fd, fo, l,
							r < 0 ? (int)r : (int)(r > INT_MAX ? INT_MAX : r));
				if (c >= 0)
					atomic_fetch_add(&e->bytes_read, (uint64_t)c);
				if (c < 0 && !ret)
					ret = c;
				else if ((size_t)c < l && !ret)
					ret = -EIO;
				break;
			}
			struct piece *p = plist_add(pl);
			if (!p)
				return -ENOMEM;
			p->page = bi;
			p->fd = f->fd;
			p->dst = dst;
			p->l = l;
			bool fits_eof = fo + l == f->size &&
					(size_t)(dst - (char *)pg->data) + round_up(l, IO_ALIGN) <= pg->charge;
			if (aligned(fo) && aligned((uintptr_t)dst) && (aligned(l) || fits_eof)) {
				p->foff = fo;
				p->rlen = (size_t)round_up(l, IO_ALIGN);
				p->need = l;
			} else {
				uint64_t a = fo & ~(uint64_t)(IO_ALIGN - 1);
				p->foff = a;
				p->skip = (size_t)(fo - a);
				p->rlen = (size_t)(round_up(fo + l, IO_ALIGN) - a);
				p->need = p->skip + l;
				p->bounce = (char *)1; /* placed in the batch's bounce area later */
			}
			break;
		}
		}
		pos += l;
	}
	return ret;
}

/* Split pieces larger than the kernel's per-request limit (int result). */
#define MAX_REQ (UINT64_C(1) << 30)

/* A fill batch in flight: which pieces each page still waits for. */
struct fill_batch {
	struct umapfs_view *v;
	struct page **pages;
	int *errs;
	struct piece *pcs;
	size_t *left; /* per page: pieces not yet completed */
	size_t next;  /* pages before this one were handed on */
	size_t n;
	io_page_done_fn done;
	void *arg;
};

/* Page i of the batch has all its bytes (or failed): log, hand it on. */
static void fill_page_done(struct fill_batch *b, size_t i)
{
	if (b->errs[i])
		elog(b->v->e, UMAPFS_LOG_ERR, "%s: fill of page at offset %llu failed: %s",
		     b->v->name, (unsigned long long)b->pages[i]->offset, strerror(-b->errs[i]));
	if (b->done)
		b->done(b->arg, i, b->errs[i]);
}

/*
 * Hand on, in page order, the pages of the batch whose reads have all
 * completed: the reads may complete in any order, but the front end is told
 * in order, so that a sequential reader sees its pages arrive as a stream
 * (and the daemon's kernel-cache FIFO stays in file order, which lets its
 * evictions drop neighbours together).
 */
static void fill_flush(struct fill_batch *b)
{
	while (b->next < b->n && !b->left[b->next])
		fill_page_done(b, b->next++);
}

/* One fill piece completed with result r: check it, copy it out of the bounce. */
static void fill_piece_done(void *arg, size_t k, int r)
{
	struct fill_batch *b = arg;
	struct piece *p = &b->pcs[k];
	if (r >= 0)
		atomic_fetch_add(&b->v->e->bytes_read, (uint64_t)r);
	if (r < 0 || (size_t)r < p->need) {
		if (!b->errs[p->page])
			b->errs[p->page] = r < 0 ? r : -EIO;
	} else if (p->bounce) {
		memcpy(p->dst, p->bounce + p->skip, p->l);
	}
	--b->left[p->page];
	fill_flush(b);
}

void io_fill_pages(struct umapfs_view *v, struct page **pages, size_t n, int *errs,
		   io_page_done_fn done, void *arg)
{
	struct umapfs_engine *e = v->e;
	struct plist pl = { 0 };
	struct ring_slot *rs = NULL;
	int ring_err = 0;
	int *res = NULL;
	struct fill_batch b = { .v = v, .pages = pages, .errs = errs, .n = n, .done = done,
				.arg = arg };

	for (size_t i = 0; i < n; i++)
		errs[i] = 0;
	if (v->has_ops) {
		for (size_t i = 0; i < n; i++) {
			int r = v->ops.fill(v->ops_arg, pages[i]->offset, pages[i]->data, pages[i]->len);
			errs[i] = r > 0 ? 0 : r;
			fill_page_done(&b, i);
		}
		return;
	}
	b.left = calloc(n, sizeof(*b.left));
	if (!b.left) {
		for (size_t i = 0; i < n; i++) {
			errs[i] = -ENOMEM;
			fill_page_done(&b, i);
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t before = pl.n;
		int r = plan_fill(v, pages[i], i, &pl);
		if (r < 0)
			errs[i] = r;
		b.left[i] = pl.n - before;
	}
	if (pl.n) {
		int err = 0;
		size_t need = 0;
		res = malloc(pl.n * sizeof(*res));
		rs = ring_get(e, &err);
		if (!res || !rs) {
			for (size_t i = 0; i < n; i++)
				errs[i] = res ? err : -ENOMEM;
			goto fail_all;
		}
		/*
		 * One bounce area for every unaligned piece of the batch, kept with
		 * the ring so cold memory is not faulted in again on every fill.
		 */
		for (size_t i = 0; i < pl.n; i++)
			if (pl.v[i].bounce)
				need += pl.v[i].rlen;
		if (need > rs->bounce_size) {
			frame_free(rs->bounce, rs->bounce_size);
			rs->bounce_size = 0;
			rs->bounce = frame_alloc(need);
			if (!rs->bounce) {
				for (size_t i = 0; i < n; i++)
					errs[i] = -ENOMEM;
				goto fail_all;
			}
			rs->bounce_size = need;
		}
		for (size_t i = 0, at = 0; i < pl.n; i++)
			if (pl.v[i].bounce) {
				pl.v[i].bounce = rs->bounce + at;
				at += pl.v[i].rlen;
			}
		for (size_t i = 0; i < pl.n; i++)
			res[i] = INT_MIN;
	}
	/* Leading pages read with no O_DIRECT piece (memory, zeros, buffered) are done now. */
	fill_flush(&b);
	if (pl.n) {
		/* Each page is handed on once its reads and those of the pages before it landed. */
		b.pcs = pl.v;
		ring_err = ring_run(e, rs, pl.v, pl.n, res, fill_piece_done, &b);
	}
	goto out;
fail_all:
	for (; b.next < n; b.next++)
		fill_page_done(&b, b.next);
out:
	if (rs) {
		if (rs->bounce_size > BOUNCE_CACHE_MAX) {
			frame_free(rs->bounce, rs->bounce_size);
			rs->bounce = NULL;
			rs->bounce_size = 0;
		}
		slot_done(e, rs, ring_err);
	}
	free(pl.v);
	free(res);
	free(b.left);
}

/* Buffered write of l bytes through the seam; returns 0 or -errno (-EIO if short). */
static int buffered_write(struct umapfs_engine *e, int fd, const char *src, size_t l, uint64_t fo)
{
	while (l) {
		size_t chunk = l > MAX_REQ ? (size_t)MAX_REQ : l;
		ssize_t r = e->sys.pwrite(e->sys.arg, fd, src, chunk, (off_t)fo);
		int c = e->sys.complete(e->sys.arg, 1, fd, fo, chunk, r < 0 ? (int)r : (int)r);
		if (c < 0)
			return c;
		atomic_fetch_add(&e->bytes_written, (uint64_t)c);
		if ((size_t)c < chunk)
			return -EIO;
		src += chunk;
		fo += chunk;
		l -= chunk;
	}
	return 0;
}

/* Plan the write-back of one extent page: buffered parts now, O_DIRECT pieces into pl. */
static int plan_writeback(struct umapfs_view *v, struct page *pg, size_t bi, struct plist *pl)
{
	struct umapfs_engine *e = v->e;
	int ret = 0;

	uint64_t pos = pg->offset, end = pg->offset + pg->len;
	for (size_t xi = find_ext(v, pos); pos < end && xi < v->n_ext && !ret; xi++) {
		struct vext *x = &v->ext[xi];
		uint64_t in = pos - x->start;
		size_t l = (size_t)((x->start + x->length < end ? x->start + x->length : end) - pos);
		char *src = (char *)pg->data + (pos - pg->offset);

		switch (x->kind) {
		case UMAPFS_EXTENT_ZERO:
			for (size_t k = 0; k < l; k++) {
				if (src[k]) {
					pthread_mutex_lock(&v->lock);
					bool warned = v->zero_warned;
					v->zero_warned = true;
					pthread_mutex_unlock(&v->lock);
					if (!warned)
						elog(e, UMAPFS_LOG_WARNING,
						     "%s: non-zero bytes written at offset %llu fall in a zero extent and are discarded",
						     v->name, (unsigned long long)(pos + k));
					break;
				}
			}
			break;
		case UMAPFS_EXTENT_MEMORY:
			memcpy(x->data + in, src, l);
			break;
		case UMAPFS_EXTENT_FILE: {
			const struct vfile *f = &v->files[x->file];
			uint64_t fo = x->file_offset + in;
			if (!f->direct) {
				ret = buffered_write(e, f->fd, src, l, fo);
				break;
			}
			/* O_DIRECT for the aligned middle when frame and file agree mod 4 KiB */
			size_t head = 0, mid = 0;
			if (((uintptr_t)src & (IO_ALIGN - 1)) == (fo & (IO_ALIGN - 1))) {
				head = (size_t)(round_up(fo, IO_ALIGN) - fo);
				if (head > l)
					head = l;
				mid = (l - head) & ~(size_t)(IO_ALIGN - 1);
			}
			if (!mid)
				head = l;
			if (head) {
				ret = buffered_write(e, f->bfd, src, head, fo);
				if (ret)
					break;
			}
			size_t tail = l - head - mid;
			if (tail) {
				ret = buffered_write(e, f->bfd, src + head + mid, tail, fo + head + mid);
				if (ret)
					break;
			}
			for (size_t done = 0; done < mid;) {
				size_t c = mid - done > MAX_REQ ? (size_t)MAX_REQ : mid - done;
				struct piece *p = plist_add(pl);
				if (!p) {
					ret = -ENOMEM;
					break;
				}
				p->page = bi;
				p->write = true;
				p->fd = f->fd;
				p->dst = src + head + done;
				p->foff = fo + head + done;
				p->rlen = p->need = p->l = c;
				done += c;
			}
			break;
		}
		}
		pos += l;
	}
	return ret;
}

/*
 * Write pages[0..n) of v back: the O_DIRECT pieces of all of them in one
 * submission.  errs[i] gets 0 or -errno (-EIO for a short write).
 */
void io_writeback_pages(struct umapfs_view *v, struct page **pages, size_t n, int *errs)
{
	struct umapfs_engine *e = v->e;
	struct plist pl = { 0 };
	int *res = NULL;

	for (size_t i = 0; i < n; i++) {
		errs[i] = 0;
		if (v->has_ops) {
			struct page *pg = pages[i];
			int r = v->ops.writeback(v->ops_arg, pg->offset, pg->data, pg->len);
			if (r >= 0)
				atomic_fetch_add(&e->bytes_written, pg->len);
			errs[i] = r > 0 ? 0 : r;
		} else {
			errs[i] = plan_writeback(v, pages[i], i, &pl);
		}
	}
	if (!pl.n)
		goto out;
	res = malloc(pl.n * sizeof(*res));
	int err = -ENOMEM;
	struct ring_slot *rs = res ? ring_get(e, &err) : NULL;
	if (!rs) {
		for (size_t i = 0; i < pl.n; i++)
			if (!errs[pl.v[i].page])
				errs[pl.v[i].page] = err;
		goto out;
	}
	for (size_t i = 0; i < pl.n; i++)
		res[i] = INT_MIN;
	slot_done(e, rs, ring_run(e, rs, pl.v, pl.n, res, NULL, NULL));
	for (size_t i = 0; i < pl.n; i++) {
		int *pe = &errs[pl.v[i].page];
		if (res[i] >= 0)
			atomic_fetch_add(&e->bytes_written, (uint64_t)res[i]);
		if (!*pe && (res[i] < 0 || (size_t)res[i] < pl.v[i].need))
			*pe = res[i] < 0 ? res[i] : -EIO;
	}
out:
	free(pl.v);
	free(res);
}

int io_writeback_page(struct umapfs_view *v, struct page *pg)
{
	int err;
	io_writeback_pages(v, &pg, 1, &err);
	return err;
}

int io_sync_view(struct umapfs_view *v)
{
	struct umapfs_engine *e = v->e;
	int ret = 0;

	if (v->has_ops)
		return v->ops.sync ? v->ops.sync(v->ops_arg) : 0;
	if (!v->writable)
		return 0;
	for (size_t i = 0; i < v->n_files; i++) {
		int r = e->sys.fdatasync(e->sys.arg, v->files[i].fd);
		if (r < 0) {
			elog(e, UMAPFS_LOG_ERR, "%s: fdatasync %s: %s", v->name, v->files[i].path,
			     strerror(-r));
			if (!ret)
				ret = r;
		}
	}
	return ret;
}
