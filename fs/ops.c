/*
 * The FUSE requests umapfs answers (low-level API).
 *
 * The namespace is flat and fixed at mount time: the views and text files
 * the plugin published, plus a hidden directory ".umapfs" holding "stats".
 * Reads are answered straight from pinned engine pages (one iovec per page,
 * no copy in the daemon); writes go to umapfs_view_write; FLUSH and FSYNC
 * write back and fdatasync through umapfs_view_flush.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "umapfs/ioctl.h"
#include "umapfs_i.h"

#define ATTR_TIMEOUT 86400.0 /* views never change size or owner */

struct node *node_by_ino(struct daemon *d, fuse_ino_t ino)
{
	if (ino < INO_FIRST_FILE || ino - INO_FIRST_FILE >= d->n_nodes)
		return NULL;
	return d->nodes[ino - INO_FIRST_FILE];
}

static struct daemon *req_daemon(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Fill *st for an inode; returns 0 or -ENOENT. */
static int fill_attr(struct daemon *d, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = d->uid;
	st->st_gid = d->gid;
	st->st_atim = st->st_mtim = st->st_ctim = d->mount_time;
	st->st_blksize = 4096;
	if (ino == INO_ROOT || ino == INO_DOTDIR) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = ino == INO_ROOT ? 3 : 2;
		return 0;
	}
	st->st_nlink = 1;
	if (ino == INO_STATS) {
		/* Generated at open and read with direct_io: no fixed size. */
		st->st_mode = S_IFREG | 0444;
		st->st_size = 0;
		return 0;
	}
	struct node *n = node_by_ino(d, ino);
	if (!n)
		return -ENOENT;
	if (n->kind == NODE_VIEW) {
		st->st_mode = S_IFREG | (n->writable ? 0644 : 0444);
		st->st_size = (off_t)n->size;
		st->st_blksize = n->page_size > (UINT64_C(1) << 30) ? 1 << 30 : (blksize_t)n->page_size;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_size = (off_t)n->text_len;
	}
	st->st_blocks = (st->st_size + 511) / 512;
	return 0;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/*
	 * Large requests and many of them in flight; never max_write above
	 * 1 MiB (libfuse 3.14's buffer), which kills the mount.
	 */
	conn->max_readahead = 1u << 20;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_AUTO_INVAL_DATA);
	if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA)
		conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct daemon *d = req_daemon(req);
	apply_readahead(d);
	fuse_ino_t ino = 0;
	if (parent == INO_ROOT) {
		if (strcmp(name, DOTDIR_NAME) == 0) {
			ino = INO_DOTDIR;
		} else {
			for (size_t i = 0; i < d->n_nodes; i++)
				if (strcmp(d->nodes[i]->name, name) == 0)
					ino = d->nodes[i]->ino;
		}
	} else if (parent == INO_DOTDIR && strcmp(name, "stats") == 0) {
		ino = INO_STATS;
	}
	if (!ino) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.generation = 1;
	e.attr_timeout = ino == INO_STATS ? 0.0 : ATTR_TIMEOUT;
	e.entry_timeout = ATTR_TIMEOUT;
	fill_attr(d, ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	(void)fi;
	apply_readahead(d);
	struct stat st;
	if (fill_attr(d, ino, &st) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_attr(req, &st, ino == INO_STATS ? 0.0 : ATTR_TIMEOUT);
}

/*
 * Views have a fixed size and owner: a size change or chmod/chown is
 * refused with EPERM; time changes are accepted and ignored.
 */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	(void)fi;
	struct stat st;
	if (fill_attr(d, ino, &st) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != st.st_size) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fuse_reply_attr(req, &st, ino == INO_STATS ? 0.0 : ATTR_TIMEOUT);
}

struct dirbuf {
	char *p;
	size_t size;
	int err;
};

static void dirbuf_add(fuse_req_t req, struct dirbuf *b, const char *name, fuse_ino_t ino,
		       mode_t mode)
{
	if (b->err)
		return;
	struct stat st;
	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = mode;
	size_t old = b->size;
	size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
	char *np = realloc(b->p, old + need);
	if (!np) {
		b->err = ENOMEM;
		return;
	}
	b->p = np;
	b->size = old + need;
	fuse_add_direntry(req, b->p + old, need, name, &st, (off_t)b->size);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	(void)fi;
	struct dirbuf b = { 0 };
	if (ino == INO_ROOT) {
		dirbuf_add(req, &b, ".", INO_ROOT, S_IFDIR);
		dirbuf_add(req, &b, "..", INO_ROOT, S_IFDIR);
		dirbuf_add(req, &b, DOTDIR_NAME, INO_DOTDIR, S_IFDIR);
		for (size_t i = 0; i < d->n_nodes; i++)
			dirbuf_add(req, &b, d->nodes[i]->name, d->nodes[i]->ino, S_IFREG);
	} else if (ino == INO_DOTDIR) {
		dirbuf_add(req, &b, ".", INO_DOTDIR, S_IFDIR);
		dirbuf_add(req, &b, "..", INO_ROOT, S_IFDIR);
		dirbuf_add(req, &b, "stats", INO_STATS, S_IFREG);
	} else {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (b.err)
		fuse_reply_err(req, b.err);
	else if ((size_t)off < b.size)
		fuse_reply_buf(req, b.p + off, b.size - (size_t)off < size ? b.size - (size_t)off : size);
	else
		fuse_reply_buf(req, NULL, 0);
	free(b.p);
}

struct textbuf {
	char *p;
	size_t len;
};

/* The stats file: engine counters, then the daemon's own. */
static struct textbuf *make_stats(struct daemon *d)
{
	struct umapfs_stats st;
	umapfs_engine_stats(d->engine, &st);
	struct textbuf *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	int need = umapfs_stats_format(&st, NULL, 0);
	if (need < 0)
		need = 0;
	size_t cap = (size_t)need + 2048;
	t->p = malloc(cap);
	if (!t->p) {
		free(t);
		return NULL;
	}
	int l = umapfs_stats_format(&st, t->p, (size_t)need + 1);
	if (l < 0)
		l = 0;
	pthread_mutex_lock(&d->kc_lock);
	uint64_t kc_bytes = d->kc_bytes, kc_budget = d->kc_budget;
	pthread_mutex_unlock(&d->kc_lock);
	l += snprintf(t->p + l, cap - (size_t)l,
		      "mount_buffer_size %llu\n"
		      "kernel_cached_bytes %llu\n"
		      "kernel_budget %llu\n"
		      "kernel_store_pages %llu\n"
		      "kernel_store_bytes %llu\n"
		      "kernel_invalidations %llu\n"
		      "kernel_invalidated_bytes %llu\n"
		      "fuse_reads %llu\n"
		      "fuse_read_bytes %llu\n"
		      "fuse_writes %llu\n"
		      "fuse_write_bytes %llu\n"
		      "fuse_flushes %llu\n"
		      "fuse_flush_errors %llu\n"
		      "seq_prefetches %llu\n"
		      "copied_reads %llu\n"
		      "ioctl_prefetches %llu\n"
		      "readaround_prefetches %llu\n"
		      "readahead_bytes %llu\n"
		      "readaround_bytes %llu\n",
		      (unsigned long long)d->opt.buffer_size, (unsigned long long)kc_bytes,
		      (unsigned long long)kc_budget, (unsigned long long)d->c.stores,
		      (unsigned long long)d->c.store_bytes,
		      (unsigned long long)d->c.invals,
		      (unsigned long long)d->c.inval_bytes, (unsigned long long)d->c.reads,
		      (unsigned long long)d->c.read_bytes, (unsigned long long)d->c.writes,
		      (unsigned long long)d->c.write_bytes, (unsigned long long)d->c.flushes,
		      (unsigned long long)d->c.flush_errors,
		      (unsigned long long)d->c.prefetch_requests,
		      (unsigned long long)d->c.copied_reads,
		      (unsigned long long)d->c.ioctl_prefetches,
		      (unsigned long long)d->c.readaround_prefetches,
		      (unsigned long long)d->opt.readahead, (unsigned long long)d->opt.readaround);
	t->len = (size_t)l < cap ? (size_t)l : cap - 1;
	return t;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	apply_readahead(d);
	int acc = fi->flags & O_ACCMODE;
	if (ino == INO_ROOT || ino == INO_DOTDIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (ino == INO_STATS) {
		if (acc != O_RDONLY) {
			fuse_reply_err(req, EACCES);
			return;
		}
		/*
		 * No per-open snapshot: a READ may still be running in another
		 * session thread when RELEASE arrives (an aborted read), so each
		 * READ formats the counters itself and owns its buffer.
		 */
		fi->fh = 0;
		fi->direct_io = 1;
		fi->noflush = 1;
		fuse_reply_open(req, fi);
		return;
	}
	struct node *n = node_by_ino(d, ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (acc != O_RDONLY && !n->writable) {
		/* Read-only mount (or view): MAP_PRIVATE still works, writes do not. */
		fuse_reply_err(req, EACCES);
		return;
	}
	if (d->plugin.open_check) {
		int ret = d->plugin.open_check(d->plugin_state, n->name, fi->flags);
		if (ret < 0) {
			fuse_reply_err(req, -ret);
			return;
		}
	}
	/* libfuse passes no open flags with FLUSH: remember a writer here */
	fi->fh = acc != O_RDONLY;
	fi->keep_cache = 1;
	fi->noflush = acc == O_RDONLY;
	fuse_reply_open(req, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

/*
 * Fill and push, in the background, the pages of [off, off+len) of a view
 * the kernel does not already hold whole (UMAPFS_IOC_PREFETCH and
 * read-around), clipped to the view and to the *left bytes a request may
 * still ask for (which it lowers): asking for more than the mount's budget
 * would only push out what was just asked for.  Runs of such pages go to the
 * engine in pieces of at most a quarter of its staging buffer (a larger
 * prefetch is refused there with ENOSPC).  Nothing here waits for a fill.
 * Returns the number of engine requests queued.
 */
static uint64_t prefetch_range(struct daemon *d, struct node *n, uint64_t off, uint64_t len,
			       uint64_t *left)
{
	uint64_t end = off + len < n->size ? off + len : n->size, queued = 0;
	if (off >= end || !*left)
		return 0;
	if (end - off > *left)
		end = off + *left;
	*left -= end - off;
	uint64_t ps = n->page_size, p = off / ps, last = (end - 1) / ps;
	uint64_t piece = d->opt.staging_size / 4 / ps ? d->opt.staging_size / 4 / ps : 1;
	while (p <= last) {
		while (p <= last && kc_pushed(d, n, p))
			p++;
		uint64_t q = p;
		while (q <= last && q - p < piece && !kc_pushed(d, n, q))
			q++;
		if (p < q) {
			uint64_t hi = q * ps < n->size ? q * ps : n->size;
			if (umapfs_view_prefetch(n->view, p * ps, hi - p * ps, NULL, NULL, -1) == 0)
				queued++;
		}
		p = q;
	}
	return queued;
}

/*
 * Dense random access: a READ that is not part of a forward run, in a region
 * of the view of which the kernel already held AR_NEED other pages (charged
 * to the budget), fills the rest of that region in the background, as kernel
 * mmap reads around a fault, so that a reader touching most of a region at
 * random pays a few misses and one parallel fill instead of a miss per page.
 * The region is `readaround` bytes (at least 4 pages), the aligned one
 * holding the page.  A region of 8 pages two of which are touched, such as
 * one pixel's time series through a cube of planes of 4 pages, reads nothing
 * around; sparse access seldom touches a region thrice.
 *
 * A region that proves dense that way also earns credit for AR_EARN regions
 * that have not (yet): while the credit lasts, their misses read around at
 * once, bar every AR_PROBE_EVERY-th, left to prove itself, so the credit
 * dries up when access turns sparse.  Under dense random access every region
 * would prove itself, but only after its serial misses (a 4 GiB view: 3 in
 * each of 512 regions).
 *
 * Only into free budget, beyond what eviction leaves free (the slack, twice
 * it when it takes neighbours charged out of order along): a guess never
 * pushes out pages the kernel holds (a random working set larger than the
 * budget read whole regions for every miss, 5x the bytes).  Nor while the
 * pushes waiting for the notifier would fill half the staging buffer with
 * this region: pages filled faster than they can be pushed leave the staging
 * buffer first and are read twice (a 4 GiB view read 7.5 GB).  Off for
 * writable views (never pushed) and for a view that got a PREFETCH request:
 * its reader says what it needs.  Called after the READ's own pages [page,
 * rlast] were filled and charged, so that they go to the disk first.
 */
#define AR_NEED 2
#define AR_EARN 4
#define AR_CREDIT_MAX 32
#define AR_PROBE_EVERY 16
static void around_detect(struct daemon *d, struct node *n, uint64_t page, uint64_t rlast)
{
	if (!d->opt.readaround || n->writable || atomic_load(&n->explicit_prefetch))
		return;
	uint64_t ps = n->page_size, npages = (n->size + ps - 1) / ps;
	uint64_t rp = d->opt.readaround / ps > 4 ? d->opt.readaround / ps : 4;
	uint64_t r = page / rp, first = r * rp, end = first + rp < npages ? first + rp : npages;
	if (end - first <= AR_NEED)
		return;
	uint64_t spare, backlog, held = kc_count(d, n, first, end, &spare, &backlog);
	uint64_t own = (rlast + 1 < end ? rlast + 1 : end) - page;
	uint64_t before = held > own ? held - own : 0;
	if (held >= end - first || (end - first - held) * ps >= spare)
		return;
	if (backlog + (end - first - held) * ps > d->opt.staging_size / 2)
		return; /* (not remembered: a later miss asks again) */
	struct seq_state *s = &n->seq;
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < 8; i++)
		if (s->ar_recent[i] == r + 1) {
			pthread_mutex_unlock(&s->lock);
			return;
		}
	if (before >= AR_NEED) {
		s->ar_credit = s->ar_credit + AR_EARN < AR_CREDIT_MAX ? s->ar_credit + AR_EARN
								      : AR_CREDIT_MAX;
	} else if (s->ar_credit && ++s->ar_probe % AR_PROBE_EVERY) {
		s->ar_credit--;
	} else {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	s->ar_recent[s->ar_next++ % 8] = r + 1;
	pthread_mutex_unlock(&s->lock);
	uint64_t left = d->kc_budget;
	atomic_fetch_add(&d->c.readaround_prefetches,
			 prefetch_range(d, n, first * ps, (end - first) * ps, &left));
}

/*
 * Sequential access: when READs walk forward page after page, queue fills
 * ahead so the pages (pushed into the kernel cache as they fill) are there
 * before the reader is.  The window grows with the run, as the kernel's own
 * readahead does, up to `prefetch` bytes: a short forward run (the few pages
 * of a MADV_WILLNEED range, neighbouring paths of a sweep touching the same
 * page) prefetches at most as much again, so a reader that strides through
 * the view is not flooded with pages it will not use; random access
 * prefetches nothing.  Returns the length of the forward run in pages (below
 * 2: not sequential).
 */
static uint64_t seq_detect(struct daemon *d, struct node *n, uint64_t first, uint64_t last)
{
	uint64_t npages = (n->size + n->page_size - 1) / n->page_size;
	uint64_t w = d->opt.prefetch / n->page_size;
	if (d->opt.prefetch && !w)
		w = 1;
	if (!w)
		return 0;
	struct seq_state *s = &n->seq;
	uint64_t from = 0, to = 0;
	pthread_mutex_lock(&s->lock);
	uint64_t mk = atomic_load(&s->marker);
	int at_marker = mk != UINT64_MAX && first <= mk && mk <= last;
	if (at_marker) {
		/* the reader entered the last window: the next one, twice as big */
		s->run = s->run * 2 > s->run ? s->run * 2 : s->run;
		atomic_store(&s->marker, UINT64_MAX);
	} else if (first == s->last_page + 1 || (s->pf_upto && first == s->pf_upto)) {
		/* the next page, or the first one past what was prefetched */
		s->run += last + 1 - (first == s->last_page + 1 ? first : s->last_page + 1);
	} else if (first > s->last_page && first < s->pf_upto) {
		/*
		 * Ahead of the reader, inside what was prefetched: the push of
		 * a page in between has not landed yet (small pages overtake
		 * the notifier), so the faults skipped pages the kernel already
		 * held.  Still the same forward run, not a jump.
		 */
		s->run += last - s->last_page;
	} else if (first != s->last_page) {
		s->run = 0; /* a jump; a READ of the same page changes nothing */
		s->pf_upto = 0;
		atomic_store(&s->marker, UINT64_MAX);
	}
	s->last_page = last > s->last_page || !s->run ? last : s->last_page;
	if (s->run >= 2) {
		uint64_t win = s->run < w ? s->run : w;
		/*
		 * At most a window past the reader; at the marker, a window past
		 * the last one, so the reader never catches up with the fills.
		 */
		from = last + 1 > s->pf_upto ? last + 1 : s->pf_upto;
		to = at_marker ? from + win : last + 1 + win;
		if (to > npages)
			to = npages;
		if (from < to) {
			s->pf_upto = to;
			atomic_store(&s->marker, from);
		}
	}
	uint64_t run = s->run;
	pthread_mutex_unlock(&s->lock);
	/* Pages the kernel already holds whole need no fill. */
	while (from < to && kc_pushed(d, n, from))
		from++;
	if (from < to) {
		uint64_t off = from * n->page_size;
		uint64_t end = to * n->page_size < n->size ? to * n->page_size : n->size;
		if (umapfs_view_prefetch(n->view, off, end - off, NULL, NULL, -1) == 0)
			atomic_fetch_add(&d->c.prefetch_requests, 1);
	}
	return run;
}

/*
 * Take `bytes` of the pin budget if that much is free right now: returns 1,
 * or 0 without waiting.  A READ must never wait here.  It arrives holding
 * the kernel's locks on the folios it covers, and the notifier's pushes and
 * invalidations of those folios wait for its reply; a READ spanning two
 * pages needs two pages of budget at once, which a steady stream of
 * one-page READs never leaves free, so a waiting READ could stall for
 * seconds or for good while the notifier (and every push and budget
 * invalidation behind it) stalled with it.  A READ that finds no room is
 * answered by copying instead (read_copy), which holds no pin while it
 * waits for a fill.
 */
static int pin_acquire(struct daemon *d, uint64_t bytes)
{
	int ok = 0;
	pthread_mutex_lock(&d->pin_lock);
	if (d->pin_avail >= bytes) {
		d->pin_avail -= bytes;
		ok = 1;
	}
	pthread_mutex_unlock(&d->pin_lock);
	return ok;
}

static void pin_release(struct daemon *d, uint64_t bytes)
{
	pthread_mutex_lock(&d->pin_lock);
	d->pin_avail += bytes;
	pthread_mutex_unlock(&d->pin_lock);
}

/*
 * Answer a READ by copying through umapfs_view_read, which pins one page at
 * a time and never holds a pin while it waits: for a READ larger than the
 * pin budget, or one that found the budget taken.  As on the pinned path,
 * each page is then pushed whole unless the kernel holds it whole already
 * (the notifier takes the bytes from the engine).
 */
static void read_copy(fuse_req_t req, struct daemon *d, struct node *n, uint64_t start,
		      uint64_t end)
{
	uint64_t ps = n->page_size;
	uint64_t first = start / ps, last = (end - 1) / ps;
	char *buf = malloc(end - start);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t r = umapfs_view_read(n->view, buf, end - start, start);
	if (r >= 0 && (uint64_t)r < end - start)
		r = -EIO; /* the view is never shorter than its size */
	if (r < 0) {
		dlog(UMAPFS_LOG_ERR, "%s: read at %llu: %s", n->name, (unsigned long long)start,
		     strerror((int)-r));
		fuse_reply_err(req, (int)-r);
	} else {
		kc_note(d, n, first, last);
		fuse_reply_buf(req, buf, (size_t)r);
		atomic_fetch_add(&d->c.read_bytes, (uint64_t)r);
		atomic_fetch_add(&d->c.copied_reads, 1);
		for (uint64_t p = first; p <= last; p++) {
			uint64_t po = p * ps;
			kc_push(n, po, (size_t)(po + ps < n->size ? ps : n->size - po), 1);
		}
	}
	free(buf);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)fi;
	struct daemon *d = req_daemon(req);
	if (ino == INO_STATS) {
		struct textbuf *t = make_stats(d);
		if (!t)
			fuse_reply_err(req, ENOMEM);
		else if ((size_t)off >= t->len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, t->p + off,
				       t->len - (size_t)off < size ? t->len - (size_t)off : size);
		if (t) {
			free(t->p);
			free(t);
		}
		return;
	}
	struct node *n = node_by_ino(d, ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->kind == NODE_TEXT) {
		if ((size_t)off >= n->text_len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, n->text + off,
				       n->text_len - (size_t)off < size ? n->text_len - (size_t)off : size);
		return;
	}
	uint64_t start = (uint64_t)off;
	if (start >= n->size || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	uint64_t end = start + size < n->size ? start + size : n->size;
	uint64_t ps = n->page_size;
	uint64_t first = start / ps, last = (end - 1) / ps;
	size_t np = (size_t)(last - first + 1);

	atomic_fetch_add(&d->c.reads, 1);
	int random = seq_detect(d, n, first, last) < 2;
	if (np > 1) /* fill all pages of the request concurrently */
		umapfs_view_prefetch(n->view, first * ps, end - first * ps, NULL, NULL, -1);
	uint64_t pin_bytes = (uint64_t)np * ps;
	if (pin_bytes > d->pin_budget || !pin_acquire(d, pin_bytes)) {
		read_copy(req, d, n, start, end);
		if (random)
			around_detect(d, n, first, last);
		return;
	}

	struct umapfs_page_ref stack_refs[16], *refs = stack_refs;
	struct iovec stack_iov[16], *iov = stack_iov;
	if (np > 16) {
		refs = calloc(np, sizeof(*refs));
		iov = calloc(np, sizeof(*iov));
		if (!refs || !iov) {
			free(refs);
			free(iov);
			pin_release(d, pin_bytes);
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	size_t pinned = 0;
	int err = 0;
	for (; pinned < np; pinned++) {
		int ret = umapfs_view_pin(n->view, (first + pinned) * ps, &refs[pinned]);
		if (ret < 0) {
			err = -ret;
			break;
		}
		uint64_t pstart = refs[pinned].offset;
		uint64_t a = start > pstart ? start - pstart : 0;
		uint64_t b = end - pstart < refs[pinned].len ? end - pstart : refs[pinned].len;
		if (b < a) {
			pinned++;
			err = EIO;
			break;
		}
		iov[pinned].iov_base = (char *)refs[pinned].data + a;
		iov[pinned].iov_len = (size_t)(b - a);
	}
	if (err) {
		dlog(UMAPFS_LOG_ERR, "%s: read at %llu: %s", n->name, (unsigned long long)start,
		     strerror(err));
		fuse_reply_err(req, err);
	} else {
		/* Remembered before the reply lands, so the budget never lags it. */
		kc_note(d, n, first, last);
		if (random)
			around_detect(d, n, first, last);
		fuse_reply_iov(req, iov, (int)np);
		atomic_fetch_add(&d->c.read_bytes, end - start);
		/*
		 * The reply gave the kernel only the blocks it asked for (a
		 * fault asks for one): push the rest of each page now that the
		 * reply has unlocked those blocks, unless the page is already
		 * in the kernel whole.
		 */
		for (size_t i = 0; i < np; i++)
			kc_push(n, refs[i].offset, refs[i].len, 1);
	}
	for (size_t i = 0; i < pinned; i++)
		umapfs_view_unpin(n->view, &refs[i], 0);
	pin_release(d, pin_bytes);
	if (refs != stack_refs) {
		free(refs);
		free(iov);
	}
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	(void)fi;
	struct node *n = node_by_ino(d, ino);
	if (!n || n->kind != NODE_VIEW || !n->writable) {
		fuse_reply_err(req, n ? EACCES : ENOENT);
		return;
	}
	if (size == 0) {
		fuse_reply_write(req, 0);
		return;
	}
	ssize_t ret = umapfs_view_write(n->view, buf, size, (uint64_t)off);
	if (ret < 0) {
		dlog(UMAPFS_LOG_ERR, "%s: write at %lld: %s", n->name, (long long)off,
		     strerror((int)-ret));
		fuse_reply_err(req, (int)-ret);
		return;
	}
	atomic_fetch_add(&d->c.writes, 1);
	atomic_fetch_add(&d->c.write_bytes, (uint64_t)ret);
	if (ret > 0)
		kc_note(d, n, (uint64_t)off / n->page_size, ((uint64_t)off + (uint64_t)ret - 1) / n->page_size);
	fuse_reply_write(req, (size_t)ret);
}

/* Write back the view's dirty pages and fdatasync; any failure is EIO. */
static int flush_node(struct daemon *d, struct node *n)
{
	atomic_fetch_add(&d->c.flushes, 1);
	int ret = umapfs_view_flush(n->view);
	if (ret < 0) {
		atomic_fetch_add(&d->c.flush_errors, 1);
		dlog(UMAPFS_LOG_ERR, "%s: write-back failed: %s", n->name, strerror(-ret));
		return EIO;
	}
	return 0;
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	struct node *n = node_by_ino(d, ino);
	int err = 0;
	if (n && n->kind == NODE_VIEW && n->writable && fi->fh)
		err = flush_node(d, n);
	fuse_reply_err(req, err);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	(void)datasync, (void)fi;
	struct node *n = node_by_ino(d, ino);
	int err = 0;
	if (n && n->kind == NODE_VIEW && n->writable)
		err = flush_node(d, n);
	fuse_reply_err(req, err);
}

static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
		     struct fuse_file_info *fi, unsigned flags, const void *in_buf, size_t in_bufsz,
		     size_t out_bufsz)
{
	struct daemon *d = req_daemon(req);
	(void)arg, (void)fi, (void)flags, (void)out_bufsz;
	struct node *n = node_by_ino(d, ino);
	if (!n || n->kind != NODE_VIEW ||
	    (cmd != UMAPFS_IOC_PREFETCH && cmd != UMAPFS_IOC_PREFETCH_RANGES)) {
		fuse_reply_err(req, ENOTTY);
		return;
	}
	/* PREFETCH is a RANGES request of one range: checked whole before anything is asked */
	struct umapfs_ioc_ranges buf = { 0 }, *rs = &buf;
	if (cmd == UMAPFS_IOC_PREFETCH) {
		if (in_bufsz < sizeof(buf.range[0])) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		memcpy(&buf.range[0], in_buf, sizeof(buf.range[0]));
		buf.count = 1;
	} else {
		if (in_bufsz < sizeof(buf)) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		memcpy(&buf, in_buf, sizeof(buf));
	}
	if (rs->count > UMAPFS_IOC_MAX_RANGES || rs->reserved) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	for (uint32_t i = 0; i < rs->count; i++)
		if (rs->range[i].offset + rs->range[i].length < rs->range[i].offset) {
			fuse_reply_err(req, EINVAL);
			return;
		}
	uint64_t left = d->kc_budget, queued = 0;
	atomic_store(&n->explicit_prefetch, 1);
	for (uint32_t i = 0; i < rs->count; i++)
		queued += prefetch_range(d, n, rs->range[i].offset, rs->range[i].length, &left);
	atomic_fetch_add(&d->c.ioctl_prefetches, queued);
	fuse_reply_ioctl(req, 0, NULL, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct daemon *d = req_daemon(req);
	(void)ino;
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	uint64_t total = 0;
	for (size_t i = 0; i < d->n_nodes; i++)
		total += d->nodes[i]->kind == NODE_VIEW ? d->nodes[i]->size : d->nodes[i]->text_len;
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = (total + 4095) / 4096;
	sv.f_files = d->n_nodes + 3;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops umapfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readdir = op_readdir,
	.open = op_open,
	.release = op_release,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.statfs = op_statfs,
	.ioctl = op_ioctl,
};
