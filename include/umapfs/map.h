/*
 * umapfs in-process mapping: an engine view mapped into the caller's address
 * space, its page faults served by the engine through userfaultfd.
 *
 * A mapping is anonymous private memory registered with one process-wide
 * userfaultfd.  Handler threads read the fault events; a missing page is
 * pinned in the engine (filled if needed) and copied into place with one
 * UFFDIO_COPY straight from the engine's page frame.  When the engine evicts
 * a page, its range is zapped from the mapping (MADV_DONTNEED), so the
 * mapping's resident set follows the engine's budget.  Writable mappings
 * install pages write-protected; the first write marks the page dirty; dirty
 * bytes are copied back into the engine page and written to the backing
 * store at eviction, umapfs_map_flush() and umapfs_map_unmap().
 *
 * A page whose fill fails is poisoned: the access gets SIGBUS, never a hang,
 * and umapfs_map_last_error() tells why.
 *
 * Conventions as in engine.h: 0 or a count on success, -errno on failure;
 * errno is never set.  See umapfs_map(3).
 */
#ifndef UMAPFS_MAP_H
#define UMAPFS_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "umapfs/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

struct umapfs_map;

#define UMAPFS_MAP_WRITE 0x1u /* read-write mapping (the view must be writable) */
#define UMAPFS_MAP_FIXED 0x2u /* place the mapping exactly at `addr` (replaces what is there) */

/*
 * Mapping options.  Initialise with umapfs_map_config_init(), then change
 * what you need; `struct_size` lets the structure grow compatibly.  The
 * engine fields (page_size ... sys) are used only by umapfs_map_file() when
 * it creates the mapping's own engine (`engine` NULL).
 */
struct umapfs_map_config {
	size_t struct_size;
	unsigned flags;          /* UMAPFS_MAP_* */
	void *addr;              /* placement hint (UMAPFS_MAP_FIXED: exact), or NULL */
	struct umapfs_engine *engine; /* umapfs_map_file: share this engine (NULL: own one) */
	uint64_t page_size;      /* umapfs_map_file: page size (0: 64 KiB) */
	uint64_t buffer_size;    /* own engine: byte budget (0: 64 MiB) */
	int policy;              /* own engine: enum umapfs_policy */
	unsigned io_threads;     /* own engine: prefetch threads (0: engine default) */
	umapfs_log_fn log;       /* own engine's log hook, also the mapping's messages */
	void *log_arg;
	const struct umapfs_sys *sys; /* own engine: system-call seam (tests) */
	unsigned fault_threads;  /* handler threads when the fault service starts (0: 2) */
};

/* Defaults: read-only, no hint, own engine, 64 KiB pages, 64 MiB buffer, FIFO. */
void umapfs_map_config_init(struct umapfs_map_config *cfg);

/*
 * Map the whole of view `v` (any view: extents, a plugin's view, ...).  The
 * mapping's page size is the view's; its budget is the view's engine's.  The
 * caller keeps ownership of `v` and must not destroy it before unmapping;
 * several mappings may share one engine.  Returns 0 and the mapping in *out,
 * -EINVAL (bad arguments, empty view), -EACCES (UMAPFS_MAP_WRITE on a
 * read-only view), -ENOSYS/-EPERM (no userfaultfd), -ENOMEM.
 */
int umapfs_map_view(struct umapfs_view *v, const struct umapfs_map_config *cfg,
		    struct umapfs_map **out);

/*
 * Map `length` bytes of the file at `path` starting at byte `offset` (length
 * 0: to the end of the file).  Creates a view (and, unless cfg->engine is
 * set, an engine with cfg's page size and budget) owned by the mapping.
 * Returns 0, or the errors of umapfs_map_view(), -ENOENT / -EACCES ... of
 * the file, -ERANGE when the range lies past the end of the file.
 */
int umapfs_map_file(const char *path, uint64_t offset, uint64_t length,
		    const struct umapfs_map_config *cfg, struct umapfs_map **out);

/* The mapping's first byte, its length in bytes, its view and page size. */
void *umapfs_map_addr(const struct umapfs_map *m);
uint64_t umapfs_map_size(const struct umapfs_map *m);
struct umapfs_view *umapfs_map_get_view(const struct umapfs_map *m);
uint64_t umapfs_map_page_size(const struct umapfs_map *m);

/*
 * The mapping containing `addr`, or NULL.  The pointer is valid until that
 * mapping is unmapped.
 */
struct umapfs_map *umapfs_map_find(const void *addr);

/*
 * Make every byte written to the mapping before the call durable: dirty
 * mapped pages are write-protected again, copied into the engine and written
 * back, then the backing files are synced.  Read-only mappings: 0.  Returns
 * 0 or the first write-back error (-EIO ...).
 */
int umapfs_map_flush(struct umapfs_map *m);

/* Called once when a prefetch of [off, off+len) completed (status 0) or failed. */
typedef void (*umapfs_map_prefetch_cb)(void *arg, struct umapfs_map *m, uint64_t off,
				       uint64_t len, int status);

/*
 * Start making bytes [off, off+len) of the mapping resident in the engine
 * without blocking.  When done, `cb` (if not NULL) runs on an engine thread
 * and `eventfd` (if >= 0) is incremented.  Before that, the prefetched
 * pages are installed in the mapping too: later accesses take no fault.  Returns 0 once queued, -EINVAL past the end, -ESHUTDOWN during
 * unmap, -ENOMEM; a range larger than the buffer completes with -ENOSPC.
 */
int umapfs_map_prefetch(struct umapfs_map *m, uint64_t off, uint64_t len,
			umapfs_map_prefetch_cb cb, void *arg, int eventfd);

/*
 * Unmap: write back dirty bytes (writable mappings), wait for fault handlers
 * busy with this mapping and for its prefetches, unmap the range, and destroy
 * the view and engine the mapping owns.  Another thread touching the range
 * after this returns gets SIGSEGV, as with munmap(2).  Returns 0 or the
 * first write-back error (the mapping is gone either way).
 */
int umapfs_map_unmap(struct umapfs_map *m);

/*
 * The most recent fill failure of mapping `m` (NULL: of any mapping in the
 * process): -errno (for example -EIO) or 0 if none; *offset (if not NULL)
 * gets the view offset of the failed page.  Async-signal-safe: may be called
 * from a SIGBUS handler.
 */
int umapfs_map_last_error(const struct umapfs_map *m, uint64_t *offset);

/*
 * Forget m's recorded error and unpoison its failed pages, so the next
 * access to them tries the fill again.  Returns 0.
 */
int umapfs_map_clear_error(struct umapfs_map *m);

/* Counters of one mapping. */
struct umapfs_map_stats {
	uint64_t faults;     /* missing-page faults served */
	uint64_t wp_faults;  /* first writes to a clean page */
	uint64_t zaps;       /* pages removed from the mapping at eviction */
	uint64_t copybacks;  /* dirty pages copied back into the engine */
	uint64_t errors;     /* fills that failed (pages poisoned) */
};

/* Snapshot m's counters into *st.  Returns 0 or -EINVAL. */
int umapfs_map_stats(const struct umapfs_map *m, struct umapfs_map_stats *st);

#ifdef __cplusplus
}
#endif
#endif
