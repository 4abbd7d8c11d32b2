/*
 * In-process mappings through userfaultfd (include/umapfs/mapping.h).
 *
 * One userfaultfd and one handler thread per mapping.  Per-page state is a
 * byte: DIRTY (written through the mapping since it was last copied into
 * the engine) and EVICTING (the engine is taking the page away).  The state
 * lock orders write-protect faults against eviction so that no write slips
 * between "copy the mapped bytes into the frame" and "zap the mapped page".
 *
 * Fill failures: the page is replaced (mmap MAP_FIXED) by a mapping of an
 * empty memfd, whose access raises SIGBUS (BUS_ADRERR, si_addr = the
 * faulting address), and the waiting thread is woken.  Chosen over
 * UFFD_FEATURE_SIGBUS (that would turn every fault into SIGBUS), over
 * UFFDIO_ZEROPAGE (silent wrong data) and over tgkill (no fault address).
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine_i.h"
#include "umapfs/mapping.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#define SYS_PG 4096u
#define ST_DIRTY 0x1u
#define ST_EVICTING 0x2u
#define MAX_EVENTS 64

struct umapfs_mapping {
	struct umapfs_view *view;
	struct umapfs_engine *own_engine; /* map_file */
	bool own_view;
	bool rw;
	char *base;
	uint64_t size;    /* view bytes */
	uint64_t maplen;  /* size rounded up to 4 KiB */
	uint64_t ps;      /* page size */
	unsigned shift;
	uint64_t npages;
	_Atomic uint8_t *st;
	pthread_mutex_t lock; /* state transitions, last error, prefetch count */
	pthread_cond_t cond;
	int uffd, stopfd;
	pthread_t thread;
	bool started;
	int last_err;
	uint64_t last_err_off;
	unsigned prefetching;
};

static _Thread_local struct umapfs_mapping *tl_handling;

static pthread_once_t sigbus_once = PTHREAD_ONCE_INIT;
static int sigbus_fd = -1;

static void sigbus_init(void)
{
	sigbus_fd = memfd_create("umapfs-sigbus", MFD_CLOEXEC);
}

static inline uint64_t pg_len4(uint64_t len)
{
	return (len + SYS_PG - 1) & ~(uint64_t)(SYS_PG - 1);
}

/* Bytes of the mapping page idx (short at the end). */
static uint64_t page_bytes(const struct umapfs_mapping *m, uint64_t idx)
{
	uint64_t off = idx << m->shift;
	return m->size - off < m->ps ? m->size - off : m->ps;
}

static void uffd_wake(struct umapfs_mapping *m, char *dst, uint64_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)dst, .len = len };
	ioctl(m->uffd, UFFDIO_WAKE, &r);
}

static int uffd_wp(struct umapfs_mapping *m, char *dst, uint64_t len, bool protect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)dst, .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	while (ioctl(m->uffd, UFFDIO_WRITEPROTECT, &wp) < 0) {
		if (errno != EAGAIN)
			return -errno;
	}
	return 0;
}

/*
 * UFFDIO_COPY of len bytes (multiple of 4 KiB).  Returns 1 if some of it was
 * already there (EEXIST: the caller wakes), 0 on success, or -errno.
 */
static int uffd_copy(struct umapfs_mapping *m, char *dst, const char *src, uint64_t len,
		     uint64_t mode)
{
	uint64_t done = 0;
	int exist = 0;
	while (done < len) {
		struct uffdio_copy c = {
			.dst = (uintptr_t)(dst + done),
			.src = (uintptr_t)(src + done),
			.len = len - done,
			.mode = mode,
		};
		if (ioctl(m->uffd, UFFDIO_COPY, &c) == 0) {
			done = len;
			break;
		}
		int err = errno;
		if (c.copy > 0)
			done += (uint64_t)c.copy;
		if (err == EAGAIN)
			continue;
		if (err == EEXIST) {
			exist = 1;
			done += SYS_PG; /* skip the page that is there */
			continue;
		}
		return -err;
	}
	return exist;
}

/*
 * Install page idx from `data` (len valid bytes).  The bytes past len up to
 * the next 4 KiB boundary are zero in the mapping, as past a file's end.
 * Wakes the threads waiting on the page.  Returns 0 or -errno.
 */
static int install(struct umapfs_mapping *m, uint64_t idx, const void *data, uint64_t len, bool wp)
{
	char *dst = m->base + (idx << m->shift);
	uint64_t full = len & ~(uint64_t)(SYS_PG - 1), tail = len - full;
	uint64_t mode = wp ? UFFDIO_COPY_MODE_WP : 0;
	int exist = 0, r;

	if (full) {
		r = uffd_copy(m, dst, data, full, mode | UFFDIO_COPY_MODE_DONTWAKE);
		if (r < 0)
			return r;
		exist |= r;
	}
	if (tail) {
		_Alignas(4096) char bounce[SYS_PG];
		memcpy(bounce, (const char *)data + full, tail);
		memset(bounce + tail, 0, SYS_PG - tail);
		r = uffd_copy(m, dst + full, bounce, SYS_PG, mode | UFFDIO_COPY_MODE_DONTWAKE);
		if (r < 0)
			return r;
		exist |= r;
	}
	(void)exist;
	uffd_wake(m, dst, pg_len4(len));
	return 0;
}

/* Make page idx raise SIGBUS, record the cause, wake its waiters. */
static void fail_page(struct umapfs_mapping *m, uint64_t idx, int err)
{
	char *dst = m->base + (idx << m->shift);
	uint64_t len = pg_len4(page_bytes(m, idx));

	pthread_mutex_lock(&m->lock);
	m->last_err = err;
	m->last_err_off = idx << m->shift;
	pthread_mutex_unlock(&m->lock);
	elog(m->view->e, UMAPFS_LOG_ERR, "%s: mapping: fill of page at offset %llu failed: %s (SIGBUS)",
	     umapfs_view_name(m->view), (unsigned long long)(idx << m->shift), strerror(-err));
	pthread_once(&sigbus_once, sigbus_init);
	if (sigbus_fd < 0 ||
	    mmap(dst, len, PROT_READ | (m->rw ? PROT_WRITE : 0), MAP_SHARED | MAP_FIXED, sigbus_fd, 0) ==
		    MAP_FAILED) {
		/* last resort: no access at all (SIGSEGV) rather than wrong data */
		mprotect(dst, len, PROT_NONE);
	}
	uffd_wake(m, dst, len);
}

static void handle_fault(struct umapfs_mapping *m, uint64_t addr, uint64_t flags)
{
	if (addr < (uintptr_t)m->base || addr >= (uintptr_t)m->base + m->maplen)
		return;
	uint64_t idx = (addr - (uintptr_t)m->base) >> m->shift;
	char *dst = m->base + (idx << m->shift);
	uint64_t len4 = pg_len4(page_bytes(m, idx));

	if (flags & UFFD_PAGEFAULT_FLAG_WP) {
		pthread_mutex_lock(&m->lock);
		if (atomic_load(&m->st[idx]) & ST_EVICTING) {
			/* the evictor zaps the page and wakes the writer, who faults again */
			pthread_mutex_unlock(&m->lock);
			return;
		}
		atomic_fetch_or(&m->st[idx], ST_DIRTY);
		int r = uffd_wp(m, dst, len4, false);
		pthread_mutex_unlock(&m->lock);
		if (r < 0)
			uffd_wake(m, dst, len4);
		return;
	}

	struct umapfs_page_ref ref;
	tl_handling = m;
	int r = umapfs_view_pin(m->view, idx << m->shift, &ref);
	tl_handling = NULL;
	if (r < 0) {
		fail_page(m, idx, r);
		return;
	}
	bool write = m->rw && (flags & UFFD_PAGEFAULT_FLAG_WRITE);
	if (write)
		atomic_fetch_or(&m->st[idx], ST_DIRTY);
	r = install(m, idx, ref.data, ref.len, m->rw && !write);
	umapfs_view_unpin(m->view, &ref, 0);
	if (r < 0) {
		/* the range is not ours any more (unmapped under us): let the thread go */
		uffd_wake(m, dst, len4);
	}
}

static void *handler_main(void *arg)
{
	struct umapfs_mapping *m = arg;
	struct uffd_msg msgs[MAX_EVENTS];
	struct pollfd pf[2] = { { .fd = m->uffd, .events = POLLIN }, { .fd = m->stopfd, .events = POLLIN } };

	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		if (pf[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			break;
		ssize_t n = read(m->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			break;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				handle_fault(m, msgs[i].arg.pagefault.address, msgs[i].arg.pagefault.flags);
		}
	}
	return NULL;
}

/* ---- hooks ------------------------------------------------------------ */

static void hook_filled(void *arg, struct umapfs_view *v, uint64_t off, const void *data, size_t len)
{
	struct umapfs_mapping *m = arg;
	(void)v;
	if (tl_handling == m || off >= m->size)
		return; /* the fault handler installs its own page */
	install(m, off >> m->shift, data, len, m->rw);
}

static int hook_evicting(void *arg, struct umapfs_view *v, uint64_t off, void *data, size_t len)
{
	struct umapfs_mapping *m = arg;
	(void)v;
	if (off >= m->size)
		return 0;
	uint64_t idx = off >> m->shift;
	char *dst = m->base + (idx << m->shift);
	uint64_t len4 = pg_len4(len);
	int dirty = 0;

	if (!m->rw) {
		madvise(dst, len4, MADV_DONTNEED);
		return 0;
	}
	pthread_mutex_lock(&m->lock);
	atomic_fetch_or(&m->st[idx], ST_EVICTING);
	uffd_wp(m, dst, len4, true);
	pthread_mutex_unlock(&m->lock);
	if (atomic_fetch_and(&m->st[idx], (uint8_t)~ST_DIRTY) & ST_DIRTY) {
		memcpy(data, dst, len);
		dirty = 1;
	}
	madvise(dst, len4, MADV_DONTNEED);
	pthread_mutex_lock(&m->lock);
	atomic_fetch_and(&m->st[idx], (uint8_t)~ST_EVICTING);
	pthread_mutex_unlock(&m->lock);
	uffd_wake(m, dst, len4);
	return dirty;
}

/* ---- setup / teardown -------------------------------------------------- */

static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	int err = errno;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
		if (fd >= 0)
			return fd;
	}
	/* user-mode faults only: system calls reading the mapping get EFAULT */
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd >= 0)
		return fd;
	return -err;
}

static void mapping_free(struct umapfs_mapping *m)
{
	if (m->uffd >= 0)
		close(m->uffd);
	if (m->stopfd >= 0)
		close(m->stopfd);
	free((void *)m->st);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m);
}

static int mapping_setup(struct umapfs_mapping *m, void *addr)
{
	struct umapfs_engine *e = m->view->e;
	const char *name = umapfs_view_name(m->view);
	int ret;

	m->size = umapfs_view_size(m->view);
	m->ps = umapfs_view_page_size(m->view);
	m->shift = (unsigned)__builtin_ctzll(m->ps);
	if (!m->size) {
		elog(e, UMAPFS_LOG_ERR, "%s: mapping: empty view", name);
		return -EINVAL;
	}
	if ((uintptr_t)addr & (SYS_PG - 1)) {
		elog(e, UMAPFS_LOG_ERR, "%s: mapping: address %p not 4 KiB aligned", name, addr);
		return -EINVAL;
	}
	m->maplen = pg_len4(m->size);
	m->npages = (m->size + m->ps - 1) >> m->shift;
	m->st = calloc(m->npages, 1);
	if (!m->st)
		return -ENOMEM;
	m->uffd = uffd_open();
	if (m->uffd < 0) {
		ret = m->uffd;
		elog(e, UMAPFS_LOG_ERR, "%s: mapping: userfaultfd: %s", name, strerror(-ret));
		return ret;
	}
	struct uffdio_api api = { .api = UFFD_API, .features = m->rw ? UFFD_FEATURE_PAGEFAULT_FLAG_WP : 0 };
	if (ioctl(m->uffd, UFFDIO_API, &api) < 0) {
		ret = -errno;
		elog(e, UMAPFS_LOG_ERR, "%s: mapping: UFFDIO_API%s: %s", name,
		     m->rw ? " (write-protect faults, needed for read-write)" : "", strerror(-ret));
		return ret;
	}
	m->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->stopfd < 0)
		return -errno;
	int prot = PROT_READ | (m->rw ? PROT_WRITE : 0);
	void *p = mmap(addr, m->maplen, prot,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (addr ? MAP_FIXED : 0), -1, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		elog(e, UMAPFS_LOG_ERR, "%s: mapping: mmap of %llu bytes: %s", name,
		     (unsigned long long)m->maplen, strerror(-ret));
		return ret;
	}
	m->base = p;
	/* no transparent huge pages: the mapping is installed page by page */
	madvise(p, m->maplen, MADV_NOHUGEPAGE);
	/*
	 * Not inherited by fork(): a child's copy would not be registered and
	 * would read zeros for missing pages.  The child gets SIGSEGV instead.
	 */
	madvise(p, m->maplen, MADV_DONTFORK);
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = m->maplen },
		.mode = UFFDIO_REGISTER_MODE_MISSING | (m->rw ? UFFDIO_REGISTER_MODE_WP : 0),
	};
	if (ioctl(m->uffd, UFFDIO_REGISTER, &reg) < 0) {
		ret = -errno;
		elog(e, UMAPFS_LOG_ERR, "%s: mapping: UFFDIO_REGISTER: %s", name, strerror(-ret));
		goto unmap;
	}
	struct umapfs_view_hooks h = {
		.struct_size = sizeof(h), .arg = m, .filled = hook_filled, .evicting = hook_evicting,
	};
	umapfs_view_set_hooks(m->view, &h);
	int err = pthread_create(&m->thread, NULL, handler_main, m);
	if (err) {
		umapfs_view_set_hooks(m->view, NULL);
		ret = -err;
		goto unmap;
	}
	m->started = true;
	return 0;
unmap:
	munmap(p, m->maplen);
	m->base = NULL;
	return ret;
}

static struct umapfs_mapping *mapping_alloc(struct umapfs_view *v, unsigned flags)
{
	struct umapfs_mapping *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->view = v;
	m->rw = flags & UMAPFS_MAPPING_WRITE;
	m->uffd = m->stopfd = -1;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	return m;
}

UMAPFS_EXPORT int umapfs_mapping_map_view(struct umapfs_view *v, void *addr, unsigned flags,
					  struct umapfs_mapping **out)
{
	if (!v || !out || (flags & ~UMAPFS_MAPPING_WRITE))
		return -EINVAL;
	if ((flags & UMAPFS_MAPPING_WRITE) && !umapfs_view_writable(v)) {
		elog(v->e, UMAPFS_LOG_ERR, "%s: mapping: read-write mapping of a read-only view",
		     umapfs_view_name(v));
		return -EROFS;
	}
	struct umapfs_mapping *m = mapping_alloc(v, flags);
	if (!m)
		return -ENOMEM;
	int ret = mapping_setup(m, addr);
	if (ret < 0) {
		mapping_free(m);
		return ret;
	}
	*out = m;
	return 0;
}

UMAPFS_EXPORT int umapfs_mapping_map_file(const char *path, uint64_t offset, uint64_t length,
					  void *addr, unsigned flags,
					  const struct umapfs_engine_config *cfg,
					  struct umapfs_mapping **out)
{
	struct umapfs_engine_config c;
	struct umapfs_engine *e = NULL;
	struct umapfs_view *v = NULL;
	int ret;

	if (!path || !out || (flags & ~UMAPFS_MAPPING_WRITE))
		return -EINVAL;
	if (!length) {
		struct stat sb;
		if (stat(path, &sb) < 0)
			return -errno;
		if ((uint64_t)sb.st_size <= offset)
			return sb.st_size == 0 ? -EINVAL : -ERANGE;
		length = (uint64_t)sb.st_size - offset;
	}
	if (cfg)
		c = *cfg;
	else
		umapfs_engine_config_init(&c);
	ret = umapfs_engine_create(&c, &e);
	if (ret < 0)
		return ret;
	struct umapfs_extent x = {
		.kind = UMAPFS_EXTENT_FILE, .path = path, .file_offset = offset, .length = length,
	};
	struct umapfs_view_desc d;
	umapfs_view_desc_init(&d);
	d.name = path;
	d.size = length;
	d.flags = (flags & UMAPFS_MAPPING_WRITE) ? UMAPFS_VIEW_WRITABLE : 0;
	d.extents = &x;
	d.n_extents = 1;
	ret = umapfs_view_create(e, &d, &v);
	if (ret < 0)
		goto fail;
	struct umapfs_mapping *m;
	ret = umapfs_mapping_map_view(v, addr, flags, &m);
	if (ret < 0)
		goto fail;
	m->own_view = true;
	m->own_engine = e;
	*out = m;
	return 0;
fail:
	if (v)
		umapfs_view_destroy(v);
	umapfs_engine_destroy(e);
	return ret;
}

UMAPFS_EXPORT void *umapfs_mapping_addr(const struct umapfs_mapping *m)
{
	return m->base;
}

UMAPFS_EXPORT uint64_t umapfs_mapping_length(const struct umapfs_mapping *m)
{
	return m->size;
}

UMAPFS_EXPORT struct umapfs_view *umapfs_mapping_view(const struct umapfs_mapping *m)
{
	return m->view;
}

UMAPFS_EXPORT int umapfs_mapping_last_error(struct umapfs_mapping *m, uint64_t *off)
{
	pthread_mutex_lock(&m->lock);
	int err = m->last_err;
	if (off)
		*off = m->last_err_off;
	pthread_mutex_unlock(&m->lock);
	return err;
}

/* Copy the dirty mapped pages into the engine and protect them again. */
static int copy_dirty(struct umapfs_mapping *m)
{
	int ret = 0;
	for (uint64_t idx = 0; idx < m->npages; idx++) {
		if (!(atomic_load(&m->st[idx]) & ST_DIRTY))
			continue;
		struct umapfs_page_ref ref;
		int r = umapfs_view_pin(m->view, idx << m->shift, &ref);
		if (r < 0) {
			if (!ret)
				ret = r;
			continue;
		}
		char *dst = m->base + (idx << m->shift);
		pthread_mutex_lock(&m->lock);
		bool d = atomic_load(&m->st[idx]) & ST_DIRTY;
		if (d) {
			/* protect first: a write from now on faults and sets DIRTY again */
			uffd_wp(m, dst, pg_len4(ref.len), true);
			atomic_fetch_and(&m->st[idx], (uint8_t)~ST_DIRTY);
		}
		pthread_mutex_unlock(&m->lock);
		if (d)
			memcpy(ref.data, dst, ref.len);
		umapfs_view_unpin(m->view, &ref, d);
	}
	return ret;
}

UMAPFS_EXPORT int umapfs_mapping_flush(struct umapfs_mapping *m)
{
	if (!m->rw)
		return 0;
	int ret = copy_dirty(m);
	int r = umapfs_view_flush(m->view);
	return ret ? ret : r;
}

struct pf_ctx {
	struct umapfs_mapping *m;
	umapfs_prefetch_cb cb;
	void *arg;
};

static void prefetch_done(void *arg, struct umapfs_view *v, uint64_t off, uint64_t len, int status)
{
	struct pf_ctx *c = arg;
	struct umapfs_mapping *m = c->m;
	if (c->cb)
		c->cb(c->arg, v, off, len, status);
	free(c);
	pthread_mutex_lock(&m->lock);
	m->prefetching--;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

UMAPFS_EXPORT int umapfs_mapping_prefetch(struct umapfs_mapping *m, uint64_t off, uint64_t len,
					  umapfs_prefetch_cb cb, void *arg, int eventfd)
{
	struct pf_ctx *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct pf_ctx){ .m = m, .cb = cb, .arg = arg };
	pthread_mutex_lock(&m->lock);
	m->prefetching++;
	pthread_mutex_unlock(&m->lock);
	int r = umapfs_view_prefetch(m->view, off, len, prefetch_done, c, eventfd);
	if (r < 0) {
		free(c);
		pthread_mutex_lock(&m->lock);
		m->prefetching--;
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->lock);
	}
	return r;
}

UMAPFS_EXPORT int umapfs_mapping_unmap(struct umapfs_mapping *m)
{
	if (!m)
		return -EINVAL;
	int ret = 0;

	/* no prefetch may install pages once the hooks are gone */
	pthread_mutex_lock(&m->lock);
	while (m->prefetching)
		pthread_cond_wait(&m->cond, &m->lock);
	pthread_mutex_unlock(&m->lock);

	/* stop serving faults: writers block from here on, the handler is joined */
	uint64_t one = 1;
	if (write(m->stopfd, &one, sizeof(one)) < 0)
		ret = -errno;
	if (m->started)
		pthread_join(m->thread, NULL);

	if (m->rw) {
		int r = copy_dirty(m);
		if (r < 0 && !ret)
			ret = r;
	}
	if (m->own_view) {
		/* destroy runs the evicting hook for each page, then writes back */
		int r = umapfs_view_destroy(m->view);
		if (r < 0 && !ret)
			ret = r;
		r = umapfs_engine_destroy(m->own_engine);
		if (r < 0 && !ret)
			ret = r;
	} else {
		int r = m->rw ? umapfs_view_flush(m->view) : 0;
		if (r < 0 && !ret)
			ret = r;
		umapfs_view_set_hooks(m->view, NULL);
	}
	/*
	 * Threads still waiting on a fault: give them SIGBUS, then close the
	 * uffd to wake them.  If some are waiting (events nobody read), give
	 * them a moment to take their SIGBUS before the range goes (after it,
	 * an access is SIGSEGV, as after munmap).
	 */
	struct uffd_msg msgs[MAX_EVENTS];
	ssize_t pending = read(m->uffd, msgs, sizeof(msgs));
	pthread_once(&sigbus_once, sigbus_init);
	if (sigbus_fd >= 0)
		mmap(m->base, m->maplen, PROT_READ, MAP_SHARED | MAP_FIXED, sigbus_fd, 0);
	close(m->uffd);
	m->uffd = -1;
	if (pending > 0)
		usleep(20 * 1000);
	munmap(m->base, m->maplen);
	mapping_free(m);
	return ret;
}
