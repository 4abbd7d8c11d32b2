/*
 * umapfs in-process mappings: a view of the engine mapped into the caller's
 * address space, its page faults served through userfaultfd.
 *
 * Each mapping has its own userfaultfd and handler thread.  A read fault pins
 * the page in the engine and installs it with one UFFDIO_COPY straight from
 * the engine's page frame (no bounce buffer).  A writable mapping installs
 * pages write-protected; the first write to a page is a write-protect fault
 * that marks the page dirty.  When the engine evicts a page, the mapping's
 * copy is zapped (MADV_DONTNEED) after newer bytes have been copied back, so
 * the process's resident set for the mapping stays within the engine's
 * buffer plus the pages in flight.
 *
 * A page whose fill fails is replaced by a mapping that raises SIGBUS
 * (a zero-length memfd), the waiting thread is woken and gets SIGBUS at the
 * faulting address, and the cause is kept: umapfs_mapping_last_error().
 * The mapping page size is the view's page size.
 *
 * Conventions as in engine.h: 0 or -errno, errno never set.
 */
#ifndef UMAPFS_MAPPING_H
#define UMAPFS_MAPPING_H

#include <stddef.h>
#include <stdint.h>

#include "umapfs/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

struct umapfs_mapping;

/* Flags of umapfs_mapping_map_view / _map_file. */
#define UMAPFS_MAPPING_WRITE 0x1u /* read-write: writes reach the view */

/*
 * Map the whole of view `v` at a fresh address (or at `addr`, replacing what
 * is there, when `addr` is not NULL; it must be 4 KiB aligned).  With
 * UMAPFS_MAPPING_WRITE the view must be writable (-EROFS otherwise).  The
 * mapping installs hooks on the view: map a view at most once at a time and
 * do not install other hooks on it.  The view must outlive the mapping.
 * Returns 0 and stores the mapping in *out, or -errno (-EPERM / -ENOSYS when
 * userfaultfd is not available, -EINVAL for a bad argument).
 */
int umapfs_mapping_map_view(struct umapfs_view *v, void *addr, unsigned flags,
			    struct umapfs_mapping **out);

/*
 * Map `length` bytes of the file `path` from `offset` (length 0: to the end
 * of the file).  The mapping gets its own engine configured by `cfg` (NULL:
 * the engine defaults; page_size and buffer_size are per mapping) and its
 * own view; both go with the mapping.  Returns 0 or -errno (-ENOENT etc. for
 * the file, -ERANGE when the range lies past its end, -EINVAL).
 */
int umapfs_mapping_map_file(const char *path, uint64_t offset, uint64_t length, void *addr,
			    unsigned flags, const struct umapfs_engine_config *cfg,
			    struct umapfs_mapping **out);

/* The start address of the mapping. */
void *umapfs_mapping_addr(const struct umapfs_mapping *m);

/* The number of bytes mapped (the view's size). */
uint64_t umapfs_mapping_length(const struct umapfs_mapping *m);

/* The view served (the mapping's own view for map_file). */
struct umapfs_view *umapfs_mapping_view(const struct umapfs_mapping *m);

/*
 * Make every write done through the mapping before the call durable: copy
 * dirty mapped pages into the engine, write-protect them again, then
 * umapfs_view_flush.  Returns 0, or the first error (pages that failed stay
 * dirty and are retried by the next flush).  Read-only mappings: 0.
 */
int umapfs_mapping_flush(struct umapfs_mapping *m);

/*
 * Start making [off, off+len) of the mapping resident without blocking;
 * pages the engine fills are installed in the mapping at once (so later
 * accesses do not fault).  `cb` (if not NULL) is called once, from an engine
 * thread, when all pages are resident (status 0) or the prefetch failed;
 * `eventfd` (if >= 0) is incremented by 1 then.  Returns 0 once queued or
 * -errno.  A prefetch larger than the buffer completes with -ENOSPC.
 * Unmap waits for prefetches still running.
 */
int umapfs_mapping_prefetch(struct umapfs_mapping *m, uint64_t off, uint64_t len,
			    umapfs_prefetch_cb cb, void *arg, int eventfd);

/*
 * The last fill failure of the mapping: returns its -errno (0 if none) and
 * stores the mapping offset of the failed page in *off (if not NULL).  The
 * failed page raises SIGBUS on access until the mapping is unmapped.
 */
int umapfs_mapping_last_error(struct umapfs_mapping *m, uint64_t *off);

/*
 * Unmap: flush (writable mappings), stop the handler thread, remove the
 * hooks, release the address range and free the mapping (and, for
 * map_file, its view and engine).  Threads still faulting on the range are
 * woken and get SIGBUS (or SIGSEGV once the range is gone).  Returns 0 or
 * the first flush/write-back error; the mapping is gone either way.
 */
int umapfs_mapping_unmap(struct umapfs_mapping *m);

#ifdef __cplusplus
}
#endif
#endif
