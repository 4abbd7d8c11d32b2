/*
 * umapfs engine: a user-space pager with application-sized pages, a bounded
 * page buffer, replaceable replacement policies and direct I/O via io_uring.
 *
 * The engine knows nothing of FUSE or FITS.  Front ends (the FUSE daemon in
 * fs/, the userfaultfd mapping in lib/map.c) and plugins are its clients.
 *
 * Conventions: functions return 0 (or a byte count) on success and -errno on
 * failure; they never set errno.  Every object is owned by the caller that
 * created it and freed with the matching destroy call.
 */
#ifndef UMAPFS_ENGINE_H
#define UMAPFS_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UMAPFS_MIN_PAGE_SIZE (UINT64_C(4) << 10)  /* 4 KiB */
#define UMAPFS_MAX_PAGE_SIZE (UINT64_C(64) << 20) /* 64 MiB */
#define UMAPFS_MAX_VIEW_SIZE (UINT64_C(1) << 48)

struct umapfs_engine;
struct umapfs_view;

/* Log levels, as syslog's. */
enum umapfs_log_level {
	UMAPFS_LOG_ERR = 3,
	UMAPFS_LOG_WARNING = 4,
	UMAPFS_LOG_NOTICE = 5,
	UMAPFS_LOG_INFO = 6,
	UMAPFS_LOG_DEBUG = 7,
};

/* Receives every message the engine emits; the engine never prints itself. */
typedef void (*umapfs_log_fn)(void *arg, int level, const char *msg);

/* Replacement policies.  FIFO by fill order is the default, as in UMap. */
enum umapfs_policy {
	UMAPFS_POLICY_FIFO = 0,
	UMAPFS_POLICY_CLOCK = 1,
	UMAPFS_POLICY_LRU = 2,
};

/*
 * Parse "fifo", "clock" or "lru" (case-insensitive).  Returns the policy, or
 * -EINVAL for any other string.
 */
int umapfs_policy_parse(const char *name);

/* The name of a policy ("fifo", ...) or NULL if it is not one. */
const char *umapfs_policy_name(int policy);

/*
 * Parse a byte size with an optional K/M/G/T suffix (powers of 1024; "KiB",
 * "k", "M", "MiB" ... accepted).  Stores the value in *out and returns 0, or
 * returns -EINVAL (not a size) / -ERANGE (overflows 64 bits).
 */
int umapfs_parse_size(const char *s, uint64_t *out);

/*
 * The system-call seam.  Every backing-file operation the engine performs
 * goes through this table, so tests can inject errors and short reads
 * without special disks.  NULL members mean "the real call".  `complete`
 * is consulted for every finished read or write (io_uring or fallback): it
 * gets the result the kernel gave and returns the result the engine should
 * see (return `res` to leave it alone).
 */
struct umapfs_sys {
	int (*open)(void *arg, const char *path, int flags, mode_t mode);
	ssize_t (*pread)(void *arg, int fd, void *buf, size_t len, off_t off);
	ssize_t (*pwrite)(void *arg, int fd, const void *buf, size_t len, off_t off);
	int (*fdatasync)(void *arg, int fd);
	int (*complete)(void *arg, int is_write, int fd, uint64_t off, size_t len, int res);
	void *arg;
};

/*
 * Engine configuration.  Initialise with umapfs_engine_config_init() and then
 * change what you need; `struct_size` lets the structure grow compatibly.
 */
struct umapfs_engine_config {
	size_t struct_size;
	uint64_t page_size;   /* default page size of views; power of two */
	uint64_t buffer_size; /* byte budget for resident page data */
	int policy;           /* enum umapfs_policy */
	unsigned io_threads;  /* asynchronous fill/prefetch threads (>= 1) */
	unsigned queue_depth; /* io_uring entries per ring */
	umapfs_log_fn log;
	void *log_arg;
	const struct umapfs_sys *sys; /* NULL: real system calls */
};

/* Defaults: 1 MiB pages, 1 GiB buffer, FIFO, 2 I/O threads, depth 64. */
void umapfs_engine_config_init(struct umapfs_engine_config *cfg);

/*
 * Create an engine.  Validates the configuration (page size a power of two
 * in [4 KiB, 64 MiB], buffer at least one page) and returns -EINVAL with a
 * logged reason otherwise.  On success stores the engine in *out.
 */
int umapfs_engine_create(const struct umapfs_engine_config *cfg, struct umapfs_engine **out);

/*
 * Destroy an engine.  All views must have been destroyed first (it returns
 * -EBUSY and does nothing otherwise).
 */
int umapfs_engine_destroy(struct umapfs_engine *e);

/* ---- views ----------------------------------------------------------- */

enum umapfs_extent_kind {
	UMAPFS_EXTENT_FILE = 0, /* bytes of a backing file */
	UMAPFS_EXTENT_MEMORY = 1, /* bytes in memory (e.g. a synthesized header) */
	UMAPFS_EXTENT_ZERO = 2,   /* zeros */
};

/*
 * One piece of a view.  A view described by extents is their concatenation
 * in order; their lengths must sum to the view's size.  FILE extents name a
 * path: the engine opens each distinct path once per view (O_DIRECT where the
 * file system allows it, otherwise buffered, said once in the log) and checks
 * that file_offset + length lies within the file.  MEMORY extents are copied
 * by the engine at view creation.
 */
struct umapfs_extent {
	int kind;
	const char *path;     /* FILE */
	uint64_t file_offset; /* FILE */
	uint64_t length;
	const void *data;     /* MEMORY */
};

/*
 * Page operations for views whose bytes are computed (a transform plugin).
 * `fill` must fill exactly `len` bytes at view offset `off` into `buf`
 * (page aligned, len = page size except at the end of the view) and return
 * 0 or -errno.  `writeback` (NULL for read-only) stores a dirty page; `sync`
 * makes earlier writebacks durable.  `release` frees `arg` when the view goes.
 * Calls may come from several threads at once, for different pages.
 */
struct umapfs_view_ops {
	size_t struct_size;
	int (*fill)(void *arg, uint64_t off, void *buf, size_t len);
	int (*writeback)(void *arg, uint64_t off, const void *buf, size_t len);
	int (*sync)(void *arg);
	void (*release)(void *arg);
};

#define UMAPFS_VIEW_WRITABLE 0x1u

/*
 * A view: either `extents` (served by the engine's direct-I/O path) or `ops`.
 */
struct umapfs_view_desc {
	size_t struct_size;
	const char *name;    /* for logs and errors */
	uint64_t size;       /* bytes; <= UMAPFS_MAX_VIEW_SIZE */
	uint64_t page_size;  /* 0: the engine's default */
	unsigned flags;      /* UMAPFS_VIEW_* */
	const struct umapfs_extent *extents;
	size_t n_extents;
	const struct umapfs_view_ops *ops;
	void *ops_arg;
};

/* Initialise a description with struct_size set and everything else zero. */
void umapfs_view_desc_init(struct umapfs_view_desc *d);

/*
 * Create a view.  Returns -EINVAL for an inconsistent description, -ENOENT /
 * -EACCES etc. when a backing file cannot be opened, -ERANGE when an extent
 * lies past the end of its file; the reason is logged with the file name.
 */
int umapfs_view_create(struct umapfs_engine *e, const struct umapfs_view_desc *d,
		       struct umapfs_view **out);

/*
 * Destroy a view: waits for its in-flight fills, writes back dirty pages,
 * syncs, drops its pages.  Returns 0, or the first write-back error (the view
 * is destroyed regardless).
 */
int umapfs_view_destroy(struct umapfs_view *v);

uint64_t umapfs_view_size(const struct umapfs_view *v);
uint64_t umapfs_view_page_size(const struct umapfs_view *v);
const char *umapfs_view_name(const struct umapfs_view *v);
int umapfs_view_writable(const struct umapfs_view *v);

/*
 * Copy `len` bytes at `off` into `buf`, filling missing pages.  Returns the
 * number of bytes copied (short only at the end of the view, 0 past it) or
 * -errno (-EIO when a backing read failed or came back short).
 */
ssize_t umapfs_view_read(struct umapfs_view *v, void *buf, size_t len, uint64_t off);

/*
 * Copy `len` bytes from `buf` into the view at `off` and mark the pages
 * dirty.  A write covering a whole page does not read it first.  Returns the
 * bytes written, -EROFS for a read-only view, -EFBIG past the end, -errno.
 */
ssize_t umapfs_view_write(struct umapfs_view *v, const void *buf, size_t len, uint64_t off);

/*
 * Write back every dirty page of the view and sync the backing files
 * (fdatasync, or ops->sync).  Returns 0 when every byte written before the
 * call is durable, else -EIO (or the error).  Pages whose write-back failed
 * stay resident and dirty.
 */
int umapfs_view_flush(struct umapfs_view *v);

/* ---- pinned page access (zero copy, for front ends) ------------------ */

/*
 * A reference to one resident page.  While pinned, the page is not evicted
 * and `data` stays valid.
 */
struct umapfs_page_ref {
	void *data;      /* page bytes */
	uint64_t offset; /* view offset of the page start */
	size_t len;      /* valid bytes (page size except at the end) */
	void *priv;      /* engine's */
};

/*
 * Pin the page containing `off`, filling it first if missing (the calling
 * thread blocks; concurrent pinners of one missing page share one fill).
 * Returns 0 or -errno (-EINVAL past the end).
 */
int umapfs_view_pin(struct umapfs_view *v, uint64_t off, struct umapfs_page_ref *ref);

/* Release a pin.  `dirty` non-zero marks the page dirty (writable views). */
void umapfs_view_unpin(struct umapfs_view *v, struct umapfs_page_ref *ref, int dirty);

/* ---- front-end hooks -------------------------------------------------- */

/*
 * Notifications a front end uses to keep another copy of the pages (the
 * kernel page cache, a userfaultfd mapping) in step with the engine.
 * `filled` runs after a page becomes resident (page pinned during the call).
 * `evicting` runs before a page leaves the buffer with its data still valid:
 * the front end drops its copy and may first copy newer bytes into `data`,
 * returning 1 if it did (the page is then written back), 0 if not, or -errno
 * to keep the page resident for now.  Hooks may run on any thread and must
 * not call back into the engine for the same view.
 */
struct umapfs_view_hooks {
	size_t struct_size;
	void *arg;
	void (*filled)(void *arg, struct umapfs_view *v, uint64_t off, const void *data, size_t len);
	int (*evicting)(void *arg, struct umapfs_view *v, uint64_t off, void *data, size_t len);
};

/* Install (or with NULL remove) hooks; the struct is copied. Returns 0. */
int umapfs_view_set_hooks(struct umapfs_view *v, const struct umapfs_view_hooks *h);

/* ---- prefetch --------------------------------------------------------- */

/* Called once when every page of a prefetch is resident (status 0) or failed. */
typedef void (*umapfs_prefetch_cb)(void *arg, struct umapfs_view *v, uint64_t off,
				   uint64_t len, int status);

/*
 * Start making [off, off+len) resident without blocking.  When done, `cb`
 * (if not NULL) is called from an engine thread, and `eventfd` (if >= 0)
 * is incremented by 1.  Returns 0 once queued, or -errno.  Prefetched pages
 * count against the buffer like any other; a prefetch larger than the buffer
 * completes with -ENOSPC.
 */
int umapfs_view_prefetch(struct umapfs_view *v, uint64_t off, uint64_t len,
			 umapfs_prefetch_cb cb, void *arg, int eventfd);

/* ---- statistics ------------------------------------------------------- */

struct umapfs_stats {
	uint64_t hits, misses, fills, fill_errors;
	uint64_t evictions, writebacks, writeback_errors;
	uint64_t bytes_read, bytes_written; /* backing I/O */
	uint64_t resident_bytes, dirty_bytes, buffer_size, page_size;
	uint64_t prefetches;
	uint64_t fill_ns_p50, fill_ns_p90, fill_ns_p99, fill_ns_max;
};

/* Snapshot the engine-wide counters. Returns 0. */
int umapfs_engine_stats(struct umapfs_engine *e, struct umapfs_stats *st);

/*
 * Format stats as "key value\n" lines into buf (NUL-terminated).  Returns the
 * length it needed (like snprintf), or -errno.
 */
int umapfs_stats_format(const struct umapfs_stats *st, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
