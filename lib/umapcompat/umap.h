/*
 * LLNL UMap's C API over umapfs (libumapfs-umap): a UMap program includes
 * <umap/umap.h>, links -lumapfs-umap instead of -lumap, and runs.
 *
 * Differences from UMap, on purpose:
 * - umap()'s `offset` is honoured (UMap ignores it and maps from byte 0).
 * - Errors are returned (UMAP_FAILED / -1 with errno set), never thrown or
 *   aborted on.
 * - A page whose read fails raises SIGBUS at the faulting address instead
 *   of hanging; umap_last_error() tells why.
 * The tunables are UMap's environment variables, read once at the first
 * call: UMAP_PAGESIZE (bytes, default 4096), UMAP_BUFSIZE (pages, default
 * 90% of free memory), UMAP_PAGE_FILLERS (engine I/O threads),
 * UMAP_PAGE_EVICTORS, UMAP_EVICT_HIGH_WATER_THRESHOLD,
 * UMAP_EVICT_LOW_WATER_THRESHOLD (percent; reported, the engine evicts on
 * demand), UMAP_MAX_FAULT_EVENTS.  All regions share one buffer, as in UMap.
 */
#ifndef UMAPFS_UMAP_COMPAT_H
#define UMAPFS_UMAP_COMPAT_H

#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UMAP_PRIVATE MAP_PRIVATE
#define UMAP_FIXED MAP_FIXED
#define UMAP_FAILED ((void *)-1)

struct umap_prefetch_item {
	void *page_base_addr;
};
typedef struct umap_prefetch_item umap_prefetch_item;

/*
 * Map `length` bytes of the open file `fd` from `offset` (a multiple of the
 * UMap page size) at `addr` (NULL: anywhere; with UMAP_FIXED exactly there).
 * PROT_WRITE makes the region read-write (fd must be open for writing).
 * Returns the region, or UMAP_FAILED with errno set.
 */
void *umap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);

/*
 * Write back and unmap the region starting at `addr`.  Returns 0, or -1 with
 * errno set (EINVAL: not a region; EIO: write-back failed, region gone).
 */
int uunmap(void *addr, size_t length);

/* Write back every region's dirty pages.  Returns 0 or -1 with errno set. */
int umap_flush(void);

/*
 * Start reading the pages whose base addresses are given (UMap: queue and
 * return).  Pages are installed as they arrive.  Unknown addresses are
 * skipped.
 */
void umap_prefetch(int npages, umap_prefetch_item *page_array);

/*
 * The last read failure of the region containing `addr`: its -errno (0 if
 * none), and the region offset of the page in *off (if not NULL).  Not in UMap.
 */
int umap_last_error(void *addr, uint64_t *off);

uint64_t umapcfg_get_system_page_size(void);
uint64_t umapcfg_get_umap_page_size(void);
uint64_t umapcfg_get_max_pages_in_buffer(void);
uint64_t umapcfg_get_num_fillers(void);
uint64_t umapcfg_get_num_evictors(void);
uint64_t umapcfg_get_max_fault_events(void);
int umapcfg_get_evict_low_water_threshold(void);
int umapcfg_get_evict_high_water_threshold(void);

#ifdef __cplusplus
}
#endif
#endif
