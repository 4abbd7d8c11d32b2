/*
 * libumap-compat: LLNL UMap's C API on umapfs's in-process mapping.
 *
 * Like UMap, all regions share one page buffer (one engine, created with the
 * first region and destroyed after the last) configured from the UMAP_*
 * environment variables, read once.  Unlike UMap, each region keeps the page
 * size in force when it was mapped, `offset` is honoured, errors come back
 * as errno, and the number of regions is not limited.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "umap/umap.h"
#include "umapfs/map.h"

#define EXPORT __attribute__((visibility("default")))

struct region {
	struct region *next;
	struct umapfs_map *m;
	struct umapfs_page_ref *pins;
	size_t npins, cappins;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct umapfs_engine *engine;
static struct region *regions;

static struct {
	uint64_t page_size, buf_pages, fillers, evictors, max_events, read_ahead;
	int high, low;
} cfg;

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return def;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || !v) {
		fprintf(stderr, "umap-compat: ignoring %s=%s (not a positive number)\n", name, s);
		return def;
	}
	return v;
}

static void cfg_init(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	uint64_t ps = env_u64("UMAP_PAGESIZE", 4096);
	if (ps < 4096 || (ps & (ps - 1))) {
		fprintf(stderr, "umap-compat: UMAP_PAGESIZE=%" PRIu64 " is not a power of two >= 4096; using 4096\n", ps);
		ps = 4096;
	}
	cfg.page_size = ps;
	/* UMap's default: 90% of the free memory */
	uint64_t avail = (uint64_t)sysconf(_SC_AVPHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t defbuf = avail / 10 * 9 / ps;
	if (defbuf < 64)
		defbuf = 64;
	cfg.buf_pages = env_u64("UMAP_BUFSIZE", defbuf);
	cfg.fillers = env_u64("UMAP_PAGE_FILLERS", (uint64_t)ncpu);
	cfg.evictors = env_u64("UMAP_PAGE_EVICTORS", (uint64_t)ncpu);
	cfg.max_events = env_u64("UMAP_MAX_FAULT_EVENTS", 256);
	cfg.read_ahead = env_u64("UMAP_READ_AHEAD", 0);
	cfg.high = (int)env_u64("UMAP_EVICT_HIGH_WATER_THRESHOLD", 90);
	cfg.low = (int)env_u64("UMAP_EVICT_LOW_WATER_THRESHOLD", 70);
	if (cfg.high > 100 || cfg.low >= cfg.high) {
		fprintf(stderr, "umap-compat: evict water marks %d/%d invalid; using 90/70\n", cfg.high, cfg.low);
		cfg.high = 90;
		cfg.low = 70;
	}
}

static void compat_log(void *arg, int level, const char *msg)
{
	(void)arg;
	if (level <= UMAPFS_LOG_WARNING)
		fprintf(stderr, "umap-compat: %s\n", msg);
}

/* The shared engine (mu held).  Returns 0 or -errno. */
static int engine_get(void)
{
	if (engine)
		return 0;
	struct umapfs_engine_config ec;
	umapfs_engine_config_init(&ec);
	ec.page_size = cfg.page_size;
	uint64_t buf = cfg.buf_pages * cfg.page_size;
	ec.buffer_size = buf < cfg.page_size ? cfg.page_size : buf;
	ec.io_threads = (unsigned)(cfg.fillers ? cfg.fillers : 1);
	ec.log = compat_log;
	return umapfs_engine_create(&ec, &engine);
}

/* Map with the mapping API; see umap.h. */
EXPORT void *umap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
	pthread_once(&once, cfg_init);
	long sps = sysconf(_SC_PAGESIZE);
	if (!length || fd < 0 || offset < 0 || (offset % sps) || !(flags & UMAP_PRIVATE) ||
	    (flags & ~(UMAP_PRIVATE | UMAP_FIXED)) || (prot & ~(PROT_READ | PROT_WRITE))) {
		errno = EINVAL;
		return UMAP_FAILED;
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return UMAP_FAILED;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	uint64_t fsize = (uint64_t)st.st_size;
	uint64_t infile = (uint64_t)offset >= fsize ? 0 : fsize - (uint64_t)offset;
	if (infile > length)
		infile = length;
	struct umapfs_extent x[2];
	size_t nx = 0;
	memset(x, 0, sizeof(x));
	if (infile) {
		x[nx].kind = UMAPFS_EXTENT_FILE;
		x[nx].path = path;
		x[nx].file_offset = (uint64_t)offset;
		x[nx].length = infile;
		nx++;
	}
	if (infile < length) {
		x[nx].kind = UMAPFS_EXTENT_ZERO;
		x[nx].length = length - infile;
		nx++;
	}

	struct region *r = calloc(1, sizeof(*r));
	if (!r) {
		errno = ENOMEM;
		return UMAP_FAILED;
	}
	pthread_mutex_lock(&mu);
	int ret = engine_get();
	struct umapfs_view *v = NULL;
	if (ret == 0) {
		struct umapfs_view_desc d;
		umapfs_view_desc_init(&d);
		d.name = path;
		d.size = length;
		d.page_size = cfg.page_size;
		d.flags = (prot & PROT_WRITE) ? UMAPFS_VIEW_WRITABLE : 0;
		d.extents = x;
		d.n_extents = nx;
		ret = umapfs_view_create(engine, &d, &v);
	}
	if (ret == 0) {
		struct umapfs_map_config mc;
		umapfs_map_config_init(&mc);
		mc.flags = ((prot & PROT_WRITE) ? UMAPFS_MAP_WRITE : 0) |
			   ((flags & UMAP_FIXED) ? UMAPFS_MAP_FIXED : 0);
		mc.addr = addr;
		mc.fault_threads = (unsigned)cfg.fillers;
		ret = umapfs_map_view(v, &mc, &r->m);
		if (ret < 0)
			umapfs_view_destroy(v);
	}
	if (ret < 0) {
		if (!regions && engine) {
			umapfs_engine_destroy(engine);
			engine = NULL;
		}
		pthread_mutex_unlock(&mu);
		free(r);
		errno = -ret;
		return UMAP_FAILED;
	}
	r->next = regions;
	regions = r;
	pthread_mutex_unlock(&mu);
	return umapfs_map_addr(r->m);
}

/* Unmap a region (length is not checked, as in UMap). */
EXPORT int uunmap(void *addr, size_t length)
{
	(void)length;
	pthread_mutex_lock(&mu);
	struct region **pp = &regions;
	while (*pp && umapfs_map_addr((*pp)->m) != addr)
		pp = &(*pp)->next;
	struct region *r = *pp;
	if (!r) {
		pthread_mutex_unlock(&mu);
		errno = EINVAL;
		return -1;
	}
	*pp = r->next;
	pthread_mutex_unlock(&mu);

	struct umapfs_view *v = umapfs_map_get_view(r->m);
	for (size_t i = 0; i < r->npins; i++)
		umapfs_view_unpin(v, &r->pins[i], 0);
	free(r->pins);
	int ret = umapfs_map_unmap(r->m);
	int r2 = umapfs_view_destroy(v);
	if (!ret)
		ret = r2;
	free(r);
	pthread_mutex_lock(&mu);
	if (!regions && engine) {
		umapfs_engine_destroy(engine);
		engine = NULL;
	}
	pthread_mutex_unlock(&mu);
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return 0;
}

/* Flush every region. */
EXPORT int umap_flush(void)
{
	int ret = 0;
	pthread_mutex_lock(&mu);
	for (struct region *r = regions; r; r = r->next) {
		int e = umapfs_map_flush(r->m);
		if (e < 0 && !ret)
			ret = e;
	}
	pthread_mutex_unlock(&mu);
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return 0;
}

static struct region *region_of(const void *p)
{
	for (struct region *r = regions; r; r = r->next) {
		const char *b = umapfs_map_addr(r->m);
		if ((const char *)p >= b && (const char *)p < b + umapfs_map_size(r->m))
			return r;
	}
	return NULL;
}

/* Queue a fill of each listed page (no wait, no notification, as in UMap). */
EXPORT void umap_prefetch(int npages, struct umap_prefetch_item *page_array)
{
	pthread_mutex_lock(&mu);
	for (int i = 0; i < npages; i++) {
		struct region *r = region_of(page_array[i].page_base_addr);
		if (!r)
			continue;
		uint64_t ps = umapfs_map_page_size(r->m);
		uint64_t off = (uint64_t)((const char *)page_array[i].page_base_addr -
					  (const char *)umapfs_map_addr(r->m));
		umapfs_map_prefetch(r->m, off & ~(ps - 1), ps, NULL, NULL, -1);
	}
	pthread_mutex_unlock(&mu);
}

/* Fill and pin [paddr, paddr+size) until uunmap. */
EXPORT void umap_fetch_and_pin(char *paddr, uint64_t size)
{
	pthread_mutex_lock(&mu);
	struct region *r = region_of(paddr);
	if (!r || !size) {
		pthread_mutex_unlock(&mu);
		return;
	}
	struct umapfs_view *v = umapfs_map_get_view(r->m);
	uint64_t ps = umapfs_map_page_size(r->m);
	uint64_t off = (uint64_t)(paddr - (char *)umapfs_map_addr(r->m));
	uint64_t end = off + size;
	if (end > umapfs_map_size(r->m))
		end = umapfs_map_size(r->m);
	for (uint64_t o = off & ~(ps - 1); o < end; o += ps) {
		if (r->npins == r->cappins) {
			size_t nc = r->cappins ? 2 * r->cappins : 16;
			struct umapfs_page_ref *np = realloc(r->pins, nc * sizeof(*np));
			if (!np)
				break;
			r->pins = np;
			r->cappins = nc;
		}
		if (umapfs_view_pin(v, o, &r->pins[r->npins]) < 0)
			break;
		r->npins++;
	}
	pthread_mutex_unlock(&mu);
}

EXPORT int umap_has_write_support(void) { return 1; }

#define GETSET(type, name, field)                                                   \
	EXPORT type umapcfg_get_##name(void)                                        \
	{                                                                           \
		pthread_once(&once, cfg_init);                                      \
		return (type)cfg.field;                                             \
	}                                                                           \
	EXPORT void umapcfg_set_##name(type val)                                    \
	{                                                                           \
		pthread_once(&once, cfg_init);                                      \
		pthread_mutex_lock(&mu);                                            \
		cfg.field = val;                                                    \
		pthread_mutex_unlock(&mu);                                          \
	}

GETSET(uint64_t, max_pages_in_buffer, buf_pages)
GETSET(uint64_t, num_fillers, fillers)
GETSET(uint64_t, num_evictors, evictors)
GETSET(uint64_t, num_flushers, evictors)
GETSET(uint64_t, max_fault_events, max_events)

EXPORT long umapcfg_get_system_page_size(void) { return sysconf(_SC_PAGESIZE); }

EXPORT uint64_t umapcfg_get_umap_page_size(void)
{
	pthread_once(&once, cfg_init);
	return cfg.page_size;
}

/* Page size of regions mapped from now on (a power of two >= 4096). */
EXPORT void umapcfg_set_umap_page_size(uint64_t page_size)
{
	pthread_once(&once, cfg_init);
	if (page_size < 4096 || (page_size & (page_size - 1)))
		return;
	pthread_mutex_lock(&mu);
	cfg.page_size = page_size;
	pthread_mutex_unlock(&mu);
}

EXPORT uint64_t umapcfg_get_read_ahead(void)
{
	pthread_once(&once, cfg_init);
	return cfg.read_ahead;
}

EXPORT int umapcfg_get_evict_low_water_threshold(void)
{
	pthread_once(&once, cfg_init);
	return cfg.low;
}

EXPORT int umapcfg_get_evict_high_water_threshold(void)
{
	pthread_once(&once, cfg_init);
	return cfg.high;
}
