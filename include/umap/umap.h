/*
 * UMap-compatible C API over umapfs (libumap-compat).
 *
 * The C interface of LLNL UMap (umap, uunmap, umap_flush, umap_prefetch,
 * umap_fetch_and_pin, the umapcfg_* getters and the UMAP_* environment
 * variables), implemented with umapfs's in-process mapping so that a UMap
 * program relinks against -lumap-compat and runs.  Differences from UMap,
 * all towards what UMap documents: `offset` is honoured; errors set errno
 * and return UMAP_FAILED / -1 instead of throwing; any number of regions.
 * See umap(3).
 */
#ifndef UMAPFS_UMAP_COMPAT_H
#define UMAPFS_UMAP_COMPAT_H

#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Map `length` bytes of the file open as `fd`, starting at `offset` (a
 * multiple of the system page size), at `addr` (a hint, or exact with
 * UMAP_FIXED).  `prot` PROT_READ or PROT_READ|PROT_WRITE; `flags` must hold
 * UMAP_PRIVATE.  Bytes past the end of the file read as zeros.  Returns the
 * address, or UMAP_FAILED with errno set.
 */
void *umap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);

/* Unmap a region returned by umap(): dirty pages are written back first.  0, or -1 and errno. */
int uunmap(void *addr, size_t length);

/* Write back the dirty pages of every region and sync.  0, or -1 and errno. */
int umap_flush(void);

struct umap_prefetch_item {
	void *page_base_addr;
};

/* Queue fills of the pages holding the given addresses; does not wait. */
void umap_prefetch(int npages, struct umap_prefetch_item *page_array);

/*
 * Fill [paddr, paddr+size) now and keep those pages resident until uunmap()
 * (they count against the buffer and are never evicted).
 */
void umap_fetch_and_pin(char *paddr, uint64_t size);

/* 1: read-write regions are supported. */
int umap_has_write_support(void);

long umapcfg_get_system_page_size(void);
uint64_t umapcfg_get_umap_page_size(void);
void umapcfg_set_umap_page_size(uint64_t page_size);
uint64_t umapcfg_get_max_pages_in_buffer(void);
void umapcfg_set_max_pages_in_buffer(uint64_t max_pages);
uint64_t umapcfg_get_num_fillers(void);
void umapcfg_set_num_fillers(uint64_t num_fillers);
uint64_t umapcfg_get_num_evictors(void);
void umapcfg_set_num_evictors(uint64_t num_evictors);
uint64_t umapcfg_get_num_flushers(void);
void umapcfg_set_num_flushers(uint64_t num_flushers);
uint64_t umapcfg_get_max_fault_events(void);
void umapcfg_set_max_fault_events(uint64_t max_events);
uint64_t umapcfg_get_read_ahead(void);
int umapcfg_get_evict_low_water_threshold(void);
int umapcfg_get_evict_high_water_threshold(void);

#ifdef __cplusplus
}
#endif

#define UMAP_PRIVATE MAP_PRIVATE
#define UMAP_FIXED MAP_FIXED
#define UMAP_FAILED ((void *)-1)

#endif
