/*
 * libumapfs-umap: UMap's C API (umap.h) over umapfs mappings.  All regions
 * share one engine, created at the first umap() from the UMAP_* variables
 * and destroyed when the last region goes; each region is a view of its
 * file range and an umapfs mapping of that view.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "umapfs/engine.h"
#include "umapfs/mapping.h"
#include "umap.h"

#define EXPORT __attribute__((visibility("default")))

struct region {
	struct region *next;
	char *addr;
	uint64_t len;
	struct umapfs_view *view;
	struct umapfs_mapping *m;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;
static struct region *regions;
static struct umapfs_engine *engine;

static struct {
	uint64_t page_size, buf_pages, fillers, evictors, max_events;
	int high, low;
} cfg;

static uint64_t env_u64(const char *name, uint64_t dflt, uint64_t min, uint64_t max)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return dflt;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || v < min || v > max) {
		fprintf(stderr, "umap: %s=%s is not a number in [%" PRIu64 ", %" PRIu64 "]; using %" PRIu64 "\n",
			name, s, min, max, dflt);
		return dflt;
	}
	return v;
}

static void cfg_read(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t hw = ncpu > 0 ? (uint64_t)ncpu : 1;
	cfg.page_size = env_u64("UMAP_PAGESIZE", 4096, UMAPFS_MIN_PAGE_SIZE, UMAPFS_MAX_PAGE_SIZE);
	if (cfg.page_size & (cfg.page_size - 1)) {
		fprintf(stderr, "umap: UMAP_PAGESIZE=%" PRIu64 " is not a power of two; using 4096\n",
			cfg.page_size);
		cfg.page_size = 4096;
	}
	long avail = sysconf(_SC_AVPHYS_PAGES), sys = sysconf(_SC_PAGESIZE);
	uint64_t free_b = avail > 0 && sys > 0 ? (uint64_t)avail * (uint64_t)sys : (UINT64_C(1) << 30);
	uint64_t dflt = free_b / 10 * 9 / cfg.page_size;
	cfg.buf_pages = env_u64("UMAP_BUFSIZE", dflt ? dflt : 1, 1, UINT64_MAX / cfg.page_size);
	cfg.fillers = env_u64("UMAP_PAGE_FILLERS", hw, 1, 256);
	cfg.evictors = env_u64("UMAP_PAGE_EVICTORS", hw, 1, 256);
	cfg.high = (int)env_u64("UMAP_EVICT_HIGH_WATER_THRESHOLD", 90, 1, 100);
	cfg.low = (int)env_u64("UMAP_EVICT_LOW_WATER_THRESHOLD", 70, 0, 100);
	cfg.max_events = env_u64("UMAP_MAX_FAULT_EVENTS", 256, 1, 1u << 20);
}

static void log_err(void *arg, int level, const char *msg)
{
	(void)arg;
	if (level <= UMAPFS_LOG_ERR)
		fprintf(stderr, "umap: %s\n", msg);
}

/* Create the shared engine (lock held).  Returns 0 or -errno. */
static int engine_get(void)
{
	if (engine)
		return 0;
	struct umapfs_engine_config c;
	umapfs_engine_config_init(&c);
	c.page_size = cfg.page_size;
	c.buffer_size = cfg.buf_pages * cfg.page_size;
	c.io_threads = (unsigned)cfg.fillers;
	c.log = log_err;
	return umapfs_engine_create(&c, &engine);
}

static void engine_put(void)
{
	if (!regions && engine) {
		umapfs_engine_destroy(engine);
		engine = NULL;
	}
}

EXPORT void *umap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
	pthread_once(&cfg_once, cfg_read);
	bool rw = prot & PROT_WRITE;
	if (!length || offset < 0 || (uint64_t)offset % cfg.page_size || fd < 0 ||
	    ((flags & UMAP_FIXED) && !addr)) {
		errno = EINVAL;
		return UMAP_FAILED;
	}
	struct region *r = calloc(1, sizeof(*r));
	if (!r) {
		errno = ENOMEM;
		return UMAP_FAILED;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	pthread_mutex_lock(&lock);
	int ret = engine_get();
	if (ret < 0)
		goto fail;
	struct umapfs_extent x = {
		.kind = UMAPFS_EXTENT_FILE, .path = path, .file_offset = (uint64_t)offset, .length = length,
	};
	struct umapfs_view_desc d;
	umapfs_view_desc_init(&d);
	d.name = path;
	d.size = length;
	d.flags = rw ? UMAPFS_VIEW_WRITABLE : 0;
	d.extents = &x;
	d.n_extents = 1;
	ret = umapfs_view_create(engine, &d, &r->view);
	if (ret < 0)
		goto fail;
	ret = umapfs_mapping_map_view(r->view, (flags & UMAP_FIXED) ? addr : NULL,
				      rw ? UMAPFS_MAPPING_WRITE : 0, &r->m);
	if (ret < 0)
		goto fail;
	r->addr = umapfs_mapping_addr(r->m);
	r->len = length;
	r->next = regions;
	regions = r;
	pthread_mutex_unlock(&lock);
	return r->addr;
fail:
	if (r->view)
		umapfs_view_destroy(r->view);
	free(r);
	engine_put();
	pthread_mutex_unlock(&lock);
	errno = -ret;
	return UMAP_FAILED;
}

EXPORT int uunmap(void *addr, size_t length)
{
	(void)length;
	pthread_mutex_lock(&lock);
	struct region **pp = &regions, *r;
	while ((r = *pp) && r->addr != addr)
		pp = &r->next;
	if (!r) {
		pthread_mutex_unlock(&lock);
		errno = EINVAL;
		return -1;
	}
	*pp = r->next;
	int ret = umapfs_mapping_unmap(r->m);
	int r2 = umapfs_view_destroy(r->view);
	if (!ret)
		ret = r2;
	free(r);
	engine_put();
	pthread_mutex_unlock(&lock);
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return 0;
}

EXPORT int umap_flush(void)
{
	int ret = 0;
	pthread_mutex_lock(&lock);
	for (struct region *r = regions; r; r = r->next) {
		int x = umapfs_mapping_flush(r->m);
		if (x < 0 && !ret)
			ret = x;
	}
	pthread_mutex_unlock(&lock);
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return 0;
}

EXPORT void umap_prefetch(int npages, umap_prefetch_item *page_array)
{
	pthread_once(&cfg_once, cfg_read);
	pthread_mutex_lock(&lock);
	for (int i = 0; i < npages; i++) {
		char *p = page_array[i].page_base_addr;
		for (struct region *r = regions; r; r = r->next) {
			if (p >= r->addr && p < r->addr + r->len) {
				uint64_t off = (uint64_t)(p - r->addr) & ~(cfg.page_size - 1);
				umapfs_mapping_prefetch(r->m, off, cfg.page_size, NULL, NULL, -1);
				break;
			}
		}
	}
	pthread_mutex_unlock(&lock);
}

EXPORT int umap_last_error(void *addr, uint64_t *off)
{
	int ret = -EINVAL;
	pthread_mutex_lock(&lock);
	for (struct region *r = regions; r; r = r->next)
		if ((char *)addr >= r->addr && (char *)addr < r->addr + r->len) {
			ret = umapfs_mapping_last_error(r->m, off);
			break;
		}
	pthread_mutex_unlock(&lock);
	return ret;
}

#define GETTER(type, name, expr)                     \
	EXPORT type name(void)                       \
	{                                            \
		pthread_once(&cfg_once, cfg_read);   \
		return (type)(expr);                 \
	}

GETTER(uint64_t, umapcfg_get_system_page_size, sysconf(_SC_PAGESIZE))
GETTER(uint64_t, umapcfg_get_umap_page_size, cfg.page_size)
GETTER(uint64_t, umapcfg_get_max_pages_in_buffer, cfg.buf_pages)
GETTER(uint64_t, umapcfg_get_num_fillers, cfg.fillers)
GETTER(uint64_t, umapcfg_get_num_evictors, cfg.evictors)
GETTER(uint64_t, umapcfg_get_max_fault_events, cfg.max_events)
GETTER(int, umapcfg_get_evict_low_water_threshold, cfg.low)
GETTER(int, umapcfg_get_evict_high_water_threshold, cfg.high)
