/*
 * The in-process mapping: engine views mapped into the process, their page
 * faults served through userfaultfd (see include/umapfs/map.h, umapfs_map(3)).
 *
 * One process-wide fault service: a userfaultfd and a few handler threads,
 * started with the first mapping and stopped after the last.  Mappings are
 * kept in an address-sorted table (rwlock); a handler looks up the faulting
 * mapping, takes an in-flight reference and serves the fault:
 *
 *   missing:  pin the engine page (filled if needed), UFFDIO_COPY the whole
 *             application page straight from the pinned frame (write-
 *             protected for a read of a writable mapping), unpin.
 *   WP:       pin, mark the page writable-in-mapping (W) and dirty, remove
 *             the protection (which wakes the writer).
 *   failure:  record the cause, UFFDIO_POISON the page: the access gets
 *             SIGBUS instead of waiting forever.
 *
 * The engine's `evicting` hook zaps the page from the mapping (after
 * write-protecting it and copying W bytes back into the frame).  Per-page
 * state of writable mappings (M: installed, W: writable) changes only under
 * a stripe lock; no engine call is ever made holding one, and every access
 * to mapped bytes under a stripe lock is to a present page, so no fault can
 * come back to a handler waiting for that lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "engine_i.h"
#include "umapfs/map.h"

/* Newer than some installed headers (Linux 6.6). */
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
	__u64 mode;
	__s64 updated;
};
#define _UFFDIO_POISON (0x08)
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#define SYS_PAGE 4096u
#define NSTRIPES 256
#define MAX_FAULT_THREADS 64

enum { ST_M = 1, ST_W = 2 };

struct umapfs_map {
	char *base;
	uint64_t size;      /* view bytes */
	uint64_t maplen;    /* mapped bytes (size rounded up to 4 KiB) */
	uint64_t page_size;
	unsigned shift;
	bool writable;
	struct umapfs_view *view;
	struct umapfs_engine *own_engine;
	bool own_view;
	unsigned char *state; /* writable: per application page, ST_* (stripe lock) */
	uint64_t npages;
	_Atomic int inflight; /* handlers serving a fault of this mapping */
	_Atomic int pf_active; /* prefetches queued */
	atomic_bool gone;     /* hooks must not touch the range any more */
	_Atomic int last_err;
	_Atomic uint64_t last_err_off;
	pthread_mutex_t poison_lock;
	uint64_t *poisoned;
	size_t npoisoned, cappoisoned;
	_Atomic uint64_t faults, wp_faults, zaps, copybacks, errors;
};

/* ---- the fault service ---- */

static struct {
	pthread_mutex_t mu;   /* start/stop, refs */
	int refs;
	int uffd;
	int stopfd;
	uint64_t features;
	pthread_t threads[MAX_FAULT_THREADS];
	unsigned nthreads;
	pthread_rwlock_t tlock; /* the table */
	struct umapfs_map **table; /* sorted by base */
	size_t n, cap;
	pthread_mutex_t stripes[NSTRIPES];
} svc = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.uffd = -1,
	.stopfd = -1,
	.tlock = PTHREAD_RWLOCK_INITIALIZER,
};

static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;
static _Atomic int g_last_err;
static _Atomic uint64_t g_last_err_off;

static void stripes_init(void)
{
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&svc.stripes[i], NULL);
}

static pthread_mutex_t *stripe(const struct umapfs_map *m, uint64_t idx)
{
	uint64_t h = ((uintptr_t)m >> 6) * UINT64_C(0x9e3779b97f4a7c15) ^ idx * UINT64_C(0xc2b2ae3d27d4eb4f);
	return &svc.stripes[(h >> 32) % NSTRIPES];
}

static void mlog(const struct umapfs_map *m, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void mlog(const struct umapfs_map *m, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (m && m->view)
		elog(m->view->e, level, "%s: %s", m->view->name, buf);
}

/* A new userfaultfd (syscall, else /dev/userfaultfd).  Returns the fd or -errno. */
static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	int err = errno;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -err;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	err = errno;
	close(dev);
	return fd >= 0 ? fd : -err;
}

/* Open and handshake: WP faults, poison and thread ids where the kernel has them. */
static int uffd_setup(uint64_t *features)
{
	int fd = uffd_open();
	if (fd < 0)
		return fd;
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	uint64_t want = api.features &
			(UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_POISON | UFFD_FEATURE_THREAD_ID);
	close(fd);
	fd = uffd_open();
	if (fd < 0)
		return fd;
	api.api = UFFD_API;
	api.features = want;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	*features = want;
	return fd;
}

/* Find the mapping holding addr (table read-locked). */
static struct umapfs_map *table_lookup(uintptr_t a)
{
	size_t lo = 0, hi = svc.n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct umapfs_map *m = svc.table[mid];
		if (a < (uintptr_t)m->base)
			hi = mid;
		else if (a >= (uintptr_t)m->base + m->maplen)
			lo = mid + 1;
		else
			return m;
	}
	return NULL;
}

static int table_insert(struct umapfs_map *m)
{
	pthread_rwlock_wrlock(&svc.tlock);
	if (svc.n == svc.cap) {
		size_t nc = svc.cap ? 2 * svc.cap : 64;
		struct umapfs_map **t = realloc(svc.table, nc * sizeof(*t));
		if (!t) {
			pthread_rwlock_unlock(&svc.tlock);
			return -ENOMEM;
		}
		svc.table = t;
		svc.cap = nc;
	}
	size_t i = 0;
	while (i < svc.n && (uintptr_t)svc.table[i]->base < (uintptr_t)m->base)
		i++;
	memmove(&svc.table[i + 1], &svc.table[i], (svc.n - i) * sizeof(*svc.table));
	svc.table[i] = m;
	svc.n++;
	pthread_rwlock_unlock(&svc.tlock);
	return 0;
}

static void table_remove(struct umapfs_map *m)
{
	pthread_rwlock_wrlock(&svc.tlock);
	for (size_t i = 0; i < svc.n; i++)
		if (svc.table[i] == m) {
			memmove(&svc.table[i], &svc.table[i + 1], (svc.n - i - 1) * sizeof(*svc.table));
			svc.n--;
			break;
		}
	if (!svc.n) {
		free(svc.table);
		svc.table = NULL;
		svc.cap = 0;
	}
	pthread_rwlock_unlock(&svc.tlock);
}

static void uffd_wake(uintptr_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };
	ioctl(svc.uffd, UFFDIO_WAKE, &r);
}

/*
 * Copy `len` bytes (a multiple of 4 KiB) from src into the mapping at dst.
 * Pages already present are skipped.  Returns 0 or -errno.
 */
static int uffd_copy(uintptr_t dst, const void *src, uint64_t len, bool wp)
{
	uint64_t done = 0;
	bool skipped = false;
	while (done < len) {
		struct uffdio_copy c = {
			.dst = dst + done,
			.src = (uintptr_t)src + done,
			.len = len - done,
			.mode = wp ? UFFDIO_COPY_MODE_WP : 0,
		};
		if (ioctl(svc.uffd, UFFDIO_COPY, &c) == 0) {
			done = len;
			break;
		}
		int err = errno;
		if (c.copy > 0)
			done += (uint64_t)c.copy;
		if (err == EEXIST) {
			done += SYS_PAGE; /* someone installed this one: skip it */
			skipped = true;
		} else if (err != EAGAIN && err != EINTR) {
			return -err;
		}
	}
	if (skipped)
		uffd_wake(dst, len);
	return 0;
}

static int uffd_wp(uintptr_t start, uint64_t len, bool protect)
{
	struct uffdio_writeprotect w = {
		.range = { .start = start, .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	for (;;) {
		if (ioctl(svc.uffd, UFFDIO_WRITEPROTECT, &w) == 0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
}

static uint64_t page_bytes(const struct umapfs_map *m, uint64_t idx)
{
	uint64_t start = idx << m->shift;
	uint64_t end = start + m->page_size;
	if (end > m->maplen)
		end = m->maplen;
	return end - start;
}

static void record_error(struct umapfs_map *m, uint64_t off, int err)
{
	atomic_store(&m->last_err_off, off);
	atomic_store(&m->last_err, err);
	atomic_store(&g_last_err_off, off);
	atomic_store(&g_last_err, err);
	atomic_fetch_add(&m->errors, 1);
}

/*
 * A fill failed: make the access fail with SIGBUS.  UFFDIO_POISON installs
 * markers that raise SIGBUS (BUS_MCEERR_AR) at the access; without it the
 * faulting thread gets a SIGBUS by tgkill and is woken to retry.
 */
static void fault_fail(struct umapfs_map *m, uint64_t idx, int err, const struct uffd_msg *msg)
{
	uint64_t off = idx << m->shift;
	uintptr_t start = (uintptr_t)m->base + off;
	uint64_t len = page_bytes(m, idx);

	record_error(m, off, err);
	mlog(m, UMAPFS_LOG_ERR, "fill of page at offset %llu failed: %s; access gets SIGBUS",
	     (unsigned long long)off, strerror(-err));
	if (svc.features & UFFD_FEATURE_POISON) {
		pthread_mutex_lock(&m->poison_lock);
		if (m->npoisoned == m->cappoisoned) {
			size_t nc = m->cappoisoned ? 2 * m->cappoisoned : 16;
			uint64_t *np = realloc(m->poisoned, nc * sizeof(*np));
			if (np) {
				m->poisoned = np;
				m->cappoisoned = nc;
			}
		}
		if (m->npoisoned < m->cappoisoned)
			m->poisoned[m->npoisoned++] = idx;
		pthread_mutex_unlock(&m->poison_lock);
		uint64_t done = 0;
		while (done < len) {
			struct uffdio_poison p = {
				.range = { .start = start + done, .len = len - done },
			};
			if (ioctl(svc.uffd, UFFDIO_POISON, &p) == 0)
				break;
			int e = errno;
			if (p.updated > 0)
				done += (uint64_t)p.updated;
			if (e == EEXIST)
				done += SYS_PAGE;
			else if (e != EAGAIN && e != EINTR)
				break;
		}
		uffd_wake(start, len);
		return;
	}
	if (svc.features & UFFD_FEATURE_THREAD_ID)
		syscall(SYS_tgkill, getpid(), (pid_t)msg->arg.pagefault.feat.ptid, SIGBUS);
	uffd_wake(start, len);
}

/* Install page idx (missing fault).  write: the fault was a write. */
static void serve_missing(struct umapfs_map *m, uint64_t idx, bool write, const struct uffd_msg *msg)
{
	uint64_t off = idx << m->shift;
	uintptr_t dst = (uintptr_t)m->base + off;
	struct umapfs_page_ref ref;
	int r = umapfs_view_pin(m->view, off, &ref);
	if (r < 0) {
		fault_fail(m, idx, r, msg);
		return;
	}
	uint64_t whole = ref.len & ~(uint64_t)(SYS_PAGE - 1);
	uint64_t tail = ref.len - whole;
	bool wp = m->writable && !write;
	pthread_mutex_t *lk = m->writable ? stripe(m, idx) : NULL;
	if (lk) {
		pthread_mutex_lock(lk);
		m->state[idx] |= (unsigned char)(ST_M | (write ? ST_W : 0));
	}
	r = 0;
	atomic_fetch_add(&m->faults, 1); /* counted before the faulting thread is woken */
	if (whole)
		r = uffd_copy(dst, ref.data, whole, wp);
	if (!r && tail) {
		/* the view's last bytes: the rest of the 4 KiB page reads as zeros */
		_Alignas(64) static _Thread_local unsigned char bounce[SYS_PAGE];
		memcpy(bounce, (const char *)ref.data + whole, tail);
		memset(bounce + tail, 0, SYS_PAGE - tail);
		r = uffd_copy(dst + whole, bounce, SYS_PAGE, wp);
	}
	if (r < 0 && lk)
		m->state[idx] = 0;
	if (lk)
		pthread_mutex_unlock(lk);
	umapfs_view_unpin(m->view, &ref, write && m->writable && !r);
	if (r < 0) {
		/* the range went away (unmap racing with the fault): just wake */
		atomic_fetch_sub(&m->faults, 1);
		uffd_wake(dst, page_bytes(m, idx));
	}
}

/* First write to a write-protected page: dirty it and let the write through. */
static void serve_wp(struct umapfs_map *m, uint64_t idx)
{
	uint64_t off = idx << m->shift;
	uintptr_t start = (uintptr_t)m->base + off;
	uint64_t len = page_bytes(m, idx);
	struct umapfs_page_ref ref;
	if (umapfs_view_pin(m->view, off, &ref) < 0) {
		uffd_wake(start, len); /* it retries as a missing fault, which reports */
		return;
	}
	pthread_mutex_t *lk = stripe(m, idx);
	bool dirty = false;
	pthread_mutex_lock(lk);
	if (m->state[idx] & ST_M) {
		m->state[idx] |= ST_W;
		dirty = true;
		atomic_fetch_add(&m->wp_faults, 1); /* before the writer runs on */
		if (uffd_wp(start, len, false) < 0)
			uffd_wake(start, len);
	} else {
		uffd_wake(start, len); /* evicted meanwhile: it comes back as missing */
	}
	pthread_mutex_unlock(lk);
	umapfs_view_unpin(m->view, &ref, dirty);
}

static void handle(const struct uffd_msg *msg)
{
	if (msg->event != UFFD_EVENT_PAGEFAULT)
		return;
	uintptr_t a = (uintptr_t)msg->arg.pagefault.address;
	pthread_rwlock_rdlock(&svc.tlock);
	struct umapfs_map *m = table_lookup(a);
	if (m)
		atomic_fetch_add(&m->inflight, 1);
	pthread_rwlock_unlock(&svc.tlock);
	if (!m) {
		/* being unmapped: let the thread retry (it gets SIGSEGV once the range is gone) */
		uffd_wake(a & ~(uintptr_t)(SYS_PAGE - 1), SYS_PAGE);
		return;
	}
	uint64_t idx = (a - (uintptr_t)m->base) >> m->shift;
	uint64_t flags = msg->arg.pagefault.flags;
	if ((flags & UFFD_PAGEFAULT_FLAG_WP) && m->writable)
		serve_wp(m, idx);
	else
		serve_missing(m, idx, (flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0, msg);
	atomic_fetch_sub(&m->inflight, 1);
}

static void *fault_thread(void *arg)
{
	(void)arg;
	struct uffd_msg msgs[16];
	struct pollfd pfd[2] = { { .fd = svc.uffd, .events = POLLIN }, { .fd = svc.stopfd, .events = POLLIN } };
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		ssize_t n = read(svc.uffd, msgs, sizeof(msgs));
		if (n <= 0)
			continue;
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			handle(&msgs[i]);
	}
	return NULL;
}

/* Take a reference on the fault service, starting it if needed.  Returns 0 or -errno. */
static int svc_get(unsigned nthreads)
{
	pthread_once(&stripes_once, stripes_init);
	pthread_mutex_lock(&svc.mu);
	if (svc.refs++) {
		pthread_mutex_unlock(&svc.mu);
		return 0;
	}
	int ret = uffd_setup(&svc.features);
	if (ret < 0)
		goto fail;
	svc.uffd = ret;
	svc.stopfd = eventfd(0, EFD_CLOEXEC);
	if (svc.stopfd < 0) {
		ret = -errno;
		goto fail;
	}
	if (!nthreads)
		nthreads = 2;
	if (nthreads > MAX_FAULT_THREADS)
		nthreads = MAX_FAULT_THREADS;
	for (svc.nthreads = 0; svc.nthreads < nthreads; svc.nthreads++) {
		int e = pthread_create(&svc.threads[svc.nthreads], NULL, fault_thread, NULL);
		if (e) {
			if (!svc.nthreads) {
				ret = -e;
				goto fail;
			}
			break;
		}
	}
	pthread_mutex_unlock(&svc.mu);
	return 0;
fail:
	if (svc.uffd >= 0)
		close(svc.uffd);
	if (svc.stopfd >= 0)
		close(svc.stopfd);
	svc.uffd = svc.stopfd = -1;
	svc.refs--;
	pthread_mutex_unlock(&svc.mu);
	return ret;
}

static void svc_put(void)
{
	pthread_mutex_lock(&svc.mu);
	if (--svc.refs == 0) {
		uint64_t big = 1;
		ssize_t w = write(svc.stopfd, &big, sizeof(big));
		(void)w;
		for (unsigned i = 0; i < svc.nthreads; i++)
			pthread_join(svc.threads[i], NULL);
		svc.nthreads = 0;
		close(svc.uffd);
		close(svc.stopfd);
		svc.uffd = svc.stopfd = -1;
	}
	pthread_mutex_unlock(&svc.mu);
}

/* ---- engine hooks ---- */

/*
 * The engine is about to drop a page: take it out of the mapping.  A page
 * written through the mapping is write-protected first (a writer now waits in
 * serve_wp until the page has left) and its bytes copied into the frame.
 */
static int hook_evicting(void *arg, struct umapfs_view *v, uint64_t off, void *data, size_t len)
{
	(void)v;
	struct umapfs_map *m = arg;
	uint64_t idx = off >> m->shift;
	uintptr_t start = (uintptr_t)m->base + off;
	uint64_t blen = page_bytes(m, idx);
	pthread_mutex_t *lk = stripe(m, idx);
	int ret = 0;

	pthread_mutex_lock(lk);
	if (atomic_load(&m->gone)) {
		pthread_mutex_unlock(lk);
		return 0;
	}
	if (m->writable && (m->state[idx] & ST_W)) {
		uffd_wp(start, blen, true);
		memcpy(data, (const void *)start, len);
		atomic_fetch_add(&m->copybacks, 1);
		ret = 1;
	}
	madvise((void *)start, blen, MADV_DONTNEED);
	if (m->writable)
		m->state[idx] = 0;
	pthread_mutex_unlock(lk);
	atomic_fetch_add(&m->zaps, 1);
	return ret;
}

/* ---- public API ---- */

/* Defaults: read-only, own engine of 64 KiB pages and a 64 MiB buffer. */
UMAPFS_EXPORT void umapfs_map_config_init(struct umapfs_map_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->struct_size = sizeof(*cfg);
	cfg->page_size = UINT64_C(64) << 10;
	cfg->buffer_size = UINT64_C(64) << 20;
	cfg->policy = UMAPFS_POLICY_FIFO;
}

static void cfg_copy(struct umapfs_map_config *c, const struct umapfs_map_config *in)
{
	umapfs_map_config_init(c);
	if (in && in->struct_size)
		memcpy(c, in, in->struct_size < sizeof(*c) ? in->struct_size : sizeof(*c));
	c->struct_size = sizeof(*c);
}

static void map_free(struct umapfs_map *m)
{
	pthread_mutex_destroy(&m->poison_lock);
	free(m->poisoned);
	free(m->state);
	free(m);
}

/*
 * Map view v.  Reserves anonymous memory (the hint or MAP_FIXED address of
 * cfg), registers it with the fault service (missing faults, plus write-
 * protect faults when writable) and installs the engine hooks.  Returns 0 or
 * -errno (see map.h).
 */
UMAPFS_EXPORT int umapfs_map_view(struct umapfs_view *v, const struct umapfs_map_config *cfg,
				  struct umapfs_map **out)
{
	struct umapfs_map_config c;
	int ret;

	if (!v || !out)
		return -EINVAL;
	*out = NULL;
	cfg_copy(&c, cfg);
	if (c.flags & ~(UMAPFS_MAP_WRITE | UMAPFS_MAP_FIXED))
		return -EINVAL;
	if (!umapfs_view_size(v))
		return -EINVAL;
	bool writable = c.flags & UMAPFS_MAP_WRITE;
	if (writable && !umapfs_view_writable(v)) {
		elog(v->e, UMAPFS_LOG_ERR, "%s: a writable mapping needs a writable view", v->name);
		return -EACCES;
	}
	if ((c.flags & UMAPFS_MAP_FIXED) && ((uintptr_t)c.addr & (SYS_PAGE - 1)))
		return -EINVAL;

	struct umapfs_map *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->poison_lock, NULL);
	m->view = v;
	m->size = umapfs_view_size(v);
	m->page_size = umapfs_view_page_size(v);
	m->shift = (unsigned)__builtin_ctzll(m->page_size);
	m->maplen = round_up(m->size, SYS_PAGE);
	m->npages = (m->size + m->page_size - 1) >> m->shift;
	m->writable = writable;
	if (writable && !(m->state = calloc(m->npages, 1))) {
		map_free(m);
		return -ENOMEM;
	}

	ret = svc_get(c.fault_threads);
	if (ret < 0) {
		elog(v->e, UMAPFS_LOG_ERR, "%s: cannot open a userfaultfd: %s", v->name, strerror(-ret));
		map_free(m);
		return ret;
	}
	if (writable && !(svc.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		elog(v->e, UMAPFS_LOG_ERR, "%s: the kernel has no userfaultfd write protection", v->name);
		ret = -EOPNOTSUPP;
		goto fail_svc;
	}
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	int fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | ((c.flags & UMAPFS_MAP_FIXED) ? MAP_FIXED : 0);
	void *base = mmap(c.addr, m->maplen, prot, fl, -1, 0);
	if (base == MAP_FAILED) {
		ret = -errno;
		elog(v->e, UMAPFS_LOG_ERR, "%s: mmap of %llu bytes: %s", v->name,
		     (unsigned long long)m->maplen, strerror(-ret));
		goto fail_svc;
	}
	m->base = base;
	madvise(base, m->maplen, MADV_NOHUGEPAGE); /* keep the resident set exact */
	/*
	 * A forked child would inherit the range without the userfaultfd
	 * registration and read zeros where pages are missing: it gets no
	 * mapping at all instead (SIGSEGV rather than silent wrong data).
	 */
	madvise(base, m->maplen, MADV_DONTFORK);
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)base, .len = m->maplen },
		.mode = UFFDIO_REGISTER_MODE_MISSING | (writable ? UFFDIO_REGISTER_MODE_WP : 0),
	};
	if (ioctl(svc.uffd, UFFDIO_REGISTER, &reg) < 0) {
		ret = -errno;
		elog(v->e, UMAPFS_LOG_ERR, "%s: userfaultfd register: %s", v->name, strerror(-ret));
		goto fail_unmap;
	}
	ret = table_insert(m);
	if (ret < 0)
		goto fail_unmap;
	struct umapfs_view_hooks h = {
		.struct_size = sizeof(h),
		.arg = m,
		.evicting = hook_evicting,
	};
	umapfs_view_set_hooks(v, &h);
	*out = m;
	return 0;

fail_unmap:
	munmap(base, m->maplen);
fail_svc:
	svc_put();
	map_free(m);
	return ret;
}

/*
 * Map [offset, offset+length) of the file at path (length 0: to its end).
 * The mapping owns the view it creates and, without cfg->engine, an engine
 * of its own.  Returns 0 or -errno (see map.h).
 */
UMAPFS_EXPORT int umapfs_map_file(const char *path, uint64_t offset, uint64_t length,
				  const struct umapfs_map_config *cfg, struct umapfs_map **out)
{
	struct umapfs_map_config c;
	struct umapfs_engine *e = NULL;
	struct umapfs_view *v = NULL;
	int ret;

	if (!path || !out)
		return -EINVAL;
	*out = NULL;
	cfg_copy(&c, cfg);
	if (!length) {
		struct stat st;
		if (stat(path, &st) < 0)
			return -errno;
		if ((uint64_t)st.st_size <= offset)
			return -ERANGE;
		length = (uint64_t)st.st_size - offset;
	}
	e = c.engine;
	if (!e) {
		struct umapfs_engine_config ec;
		umapfs_engine_config_init(&ec);
		if (c.page_size)
			ec.page_size = c.page_size;
		if (c.buffer_size)
			ec.buffer_size = c.buffer_size;
		ec.policy = c.policy;
		if (c.io_threads)
			ec.io_threads = c.io_threads;
		ec.log = c.log;
		ec.log_arg = c.log_arg;
		ec.sys = c.sys;
		ret = umapfs_engine_create(&ec, &e);
		if (ret < 0)
			return ret;
	}
	struct umapfs_extent x = {
		.kind = UMAPFS_EXTENT_FILE,
		.path = path,
		.file_offset = offset,
		.length = length,
	};
	struct umapfs_view_desc d;
	umapfs_view_desc_init(&d);
	d.name = path;
	d.size = length;
	d.page_size = c.page_size;
	d.flags = (c.flags & UMAPFS_MAP_WRITE) ? UMAPFS_VIEW_WRITABLE : 0;
	d.extents = &x;
	d.n_extents = 1;
	ret = umapfs_view_create(e, &d, &v);
	if (ret < 0)
		goto fail;
	struct umapfs_map *m;
	ret = umapfs_map_view(v, &c, &m);
	if (ret < 0)
		goto fail;
	m->own_view = true;
	m->own_engine = c.engine ? NULL : e;
	*out = m;
	return 0;
fail:
	if (v)
		umapfs_view_destroy(v);
	if (e && !c.engine)
		umapfs_engine_destroy(e);
	return ret;
}

/* The first mapped byte (NULL for NULL). */
UMAPFS_EXPORT void *umapfs_map_addr(const struct umapfs_map *m) { return m ? m->base : NULL; }

/* The mapping's size in bytes: the view's size. */
UMAPFS_EXPORT uint64_t umapfs_map_size(const struct umapfs_map *m) { return m ? m->size : 0; }

/* The view behind the mapping. */
UMAPFS_EXPORT struct umapfs_view *umapfs_map_get_view(const struct umapfs_map *m)
{
	return m ? m->view : NULL;
}

/* The mapping's page size: each fault installs one page of this size. */
UMAPFS_EXPORT uint64_t umapfs_map_page_size(const struct umapfs_map *m)
{
	return m ? m->page_size : 0;
}

/* The mapping holding addr, or NULL. */
UMAPFS_EXPORT struct umapfs_map *umapfs_map_find(const void *addr)
{
	pthread_rwlock_rdlock(&svc.tlock);
	struct umapfs_map *m = svc.n ? table_lookup((uintptr_t)addr) : NULL;
	pthread_rwlock_unlock(&svc.tlock);
	return m;
}

/* Copy every page written through the mapping back into the engine (dirty). */
static int copy_back(struct umapfs_map *m)
{
	int ret = 0;
	if (!m->writable)
		return 0;
	for (uint64_t idx = 0; idx < m->npages; idx++) {
		if (!(__atomic_load_n(&m->state[idx], __ATOMIC_RELAXED) & ST_W))
			continue;
		uint64_t off = idx << m->shift;
		struct umapfs_page_ref ref;
		int r = umapfs_view_pin(m->view, off, &ref);
		if (r < 0) {
			if (!ret)
				ret = r;
			continue;
		}
		pthread_mutex_t *lk = stripe(m, idx);
		bool dirty = false;
		pthread_mutex_lock(lk);
		if (m->state[idx] & ST_W) {
			uintptr_t start = (uintptr_t)m->base + off;
			uffd_wp(start, page_bytes(m, idx), true);
			memcpy(ref.data, (const void *)start, ref.len);
			m->state[idx] &= (unsigned char)~ST_W;
			dirty = true;
		}
		pthread_mutex_unlock(lk);
		umapfs_view_unpin(m->view, &ref, dirty);
		if (dirty)
			atomic_fetch_add(&m->copybacks, 1);
	}
	return ret;
}

/* Write back and sync what was written through the mapping (see map.h). */
UMAPFS_EXPORT int umapfs_map_flush(struct umapfs_map *m)
{
	if (!m)
		return -EINVAL;
	if (!m->writable)
		return 0;
	int ret = copy_back(m);
	int r = umapfs_view_flush(m->view);
	return ret ? ret : r;
}

struct pf_ctx {
	struct umapfs_map *m;
	umapfs_map_prefetch_cb cb;
	void *arg;
};

/*
 * After a prefetch: copy the resident pages of [off, off+len) into the
 * mapping too, so that the accesses that follow take no fault at all.
 * Best effort (a page evicted meanwhile is simply left to fault).  Each copy
 * happens under the page's stripe lock with `gone` checked, so it can never
 * land in the range after unmap has released it.
 */
static void install_range(struct umapfs_map *m, uint64_t off, uint64_t len)
{
	if (!len)
		return;
	uint64_t first = off >> m->shift, last = (off + len - 1) >> m->shift;
	for (uint64_t idx = first; idx <= last && !atomic_load(&m->gone); idx++) {
		if (m->writable && (__atomic_load_n(&m->state[idx], __ATOMIC_RELAXED) & ST_M))
			continue;
		struct umapfs_page_ref ref;
		if (umapfs_view_pin(m->view, idx << m->shift, &ref) < 0)
			return;
		uintptr_t dst = (uintptr_t)m->base + (idx << m->shift);
		uint64_t whole = ref.len & ~(uint64_t)(SYS_PAGE - 1);
		pthread_mutex_t *lk = stripe(m, idx);
		pthread_mutex_lock(lk);
		/* the view's partial last page is left to its fault (it needs the zero tail) */
		if (!atomic_load(&m->gone) && whole && whole == ref.len &&
		    (!m->writable || !(m->state[idx] & ST_M))) {
			if (uffd_copy(dst, ref.data, whole, m->writable) == 0 && m->writable)
				m->state[idx] |= ST_M;
		}
		pthread_mutex_unlock(lk);
		umapfs_view_unpin(m->view, &ref, 0);
	}
}

static void pf_done(void *arg, struct umapfs_view *v, uint64_t off, uint64_t len, int status)
{
	(void)v;
	struct pf_ctx *c = arg;
	struct umapfs_map *m = c->m;
	if (status == 0)
		install_range(m, off, len);
	if (c->cb)
		c->cb(c->arg, m, off, len, status);
	free(c);
	atomic_fetch_sub(&m->pf_active, 1);
}

/* Queue a fill of [off, off+len) of the mapping (see map.h). */
UMAPFS_EXPORT int umapfs_map_prefetch(struct umapfs_map *m, uint64_t off, uint64_t len,
				      umapfs_map_prefetch_cb cb, void *arg, int eventfd)
{
	if (!m || off >= m->size)
		return -EINVAL;
	if (atomic_load(&m->gone))
		return -ESHUTDOWN;
	struct pf_ctx *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->m = m;
	c->cb = cb;
	c->arg = arg;
	atomic_fetch_add(&m->pf_active, 1);
	int r = umapfs_view_prefetch(m->view, off, len, pf_done, c, eventfd);
	if (r < 0) {
		atomic_fetch_sub(&m->pf_active, 1);
		free(c);
	}
	return r;
}

/* Unmap (see map.h for the order of events). */
UMAPFS_EXPORT int umapfs_map_unmap(struct umapfs_map *m)
{
	if (!m)
		return -EINVAL;
	int ret = umapfs_map_flush(m);

	table_remove(m);
	while (atomic_load(&m->inflight))
		usleep(100);
	atomic_store(&m->gone, true);
	for (int i = 0; i < NSTRIPES; i++) {
		/* a hook that saw gone == false has finished when we get its lock */
		pthread_mutex_lock(&svc.stripes[i]);
		pthread_mutex_unlock(&svc.stripes[i]);
	}
	umapfs_view_set_hooks(m->view, NULL);
	munmap(m->base, m->maplen);
	if (m->own_view) {
		int r = umapfs_view_destroy(m->view); /* cancels and waits for prefetches */
		if (r < 0 && !ret)
			ret = r;
	}
	while (atomic_load(&m->pf_active))
		usleep(200);
	if (m->own_engine)
		umapfs_engine_destroy(m->own_engine);
	svc_put();
	map_free(m);
	return ret;
}

/* The latest fill error of m (or of any mapping), async-signal-safe. */
UMAPFS_EXPORT int umapfs_map_last_error(const struct umapfs_map *m, uint64_t *offset)
{
	if (m) {
		int e = atomic_load(&((struct umapfs_map *)m)->last_err);
		if (offset)
			*offset = atomic_load(&((struct umapfs_map *)m)->last_err_off);
		return e;
	}
	int e = atomic_load(&g_last_err);
	if (offset)
		*offset = atomic_load(&g_last_err_off);
	return e;
}

/* Forget the error and unpoison failed pages so they are filled again. */
UMAPFS_EXPORT int umapfs_map_clear_error(struct umapfs_map *m)
{
	if (!m)
		return -EINVAL;
	pthread_mutex_lock(&m->poison_lock);
	for (size_t i = 0; i < m->npoisoned; i++) {
		uint64_t idx = m->poisoned[i];
		madvise(m->base + (idx << m->shift), page_bytes(m, idx), MADV_DONTNEED);
	}
	m->npoisoned = 0;
	atomic_store(&m->last_err, 0);
	pthread_mutex_unlock(&m->poison_lock);
	return 0;
}

/* Snapshot the mapping's counters. */
UMAPFS_EXPORT int umapfs_map_stats(const struct umapfs_map *m, struct umapfs_map_stats *st)
{
	if (!m || !st)
		return -EINVAL;
	struct umapfs_map *mm = (struct umapfs_map *)m;
	st->faults = atomic_load(&mm->faults);
	st->wp_faults = atomic_load(&mm->wp_faults);
	st->zaps = atomic_load(&mm->zaps);
	st->copybacks = atomic_load(&mm->copybacks);
	st->errors = atomic_load(&mm->errors);
	return 0;
}
