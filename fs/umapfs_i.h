/*
 * umapfs daemon internals (fs/).  Private to the daemon: nothing here is
 * installed.  The daemon is a thin FUSE front end over the engine: main.c
 * parses options, loads the plugin and runs the session; ops.c answers FUSE
 * requests; kcache.c keeps the kernel page cache in step with the mount's
 * budget.
 */
#ifndef UMAPFS_FS_I_H
#define UMAPFS_FS_I_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "umapfs/engine.h"
#include "umapfs/plugin.h"

/* Inode numbers: the root, the hidden directory and its stats file are fixed. */
#define INO_ROOT 1
#define INO_DOTDIR 2
#define INO_STATS 3
#define INO_FIRST_FILE 4

#define DOTDIR_NAME ".umapfs"

enum node_kind { NODE_VIEW, NODE_TEXT };

struct daemon;

/* Sequential-access detector of one view (see ops.c). */
struct seq_state {
	pthread_mutex_t lock;
	uint64_t last_page; /* last page index a READ touched */
	uint64_t pf_upto;   /* pages below this were already prefetched */
	uint64_t run;       /* pages of the current forward run (READs and prefetch) */
	/*
	 * The first page of the last window prefetched, which is filled but not
	 * pushed: the reader's READ of it says the reader entered that window,
	 * time to prefetch the next (the kernel's PG_readahead mark).  Read
	 * without the lock by the push hook.
	 */
	_Atomic uint64_t marker;
	/*
	 * Read-around: the last regions filled around a dense random miss
	 * (region index + 1; 0: none), so the READs that arrive while one is
	 * in flight do not ask for it again.
	 */
	uint64_t ar_recent[8];
	unsigned ar_next;
	/* read-around credit and probe count (see around_detect) */
	uint64_t ar_credit;
	unsigned ar_probe;
};

/* A two-level bitmap of application pages the kernel may cache. */
struct kbitmap {
	uint64_t **chunks;
	uint64_t nchunks;
};

/* A file of the mount. */
struct node {
	fuse_ino_t ino;
	char *name;
	enum node_kind kind;
	struct daemon *d;
	/* NODE_VIEW */
	struct umapfs_view *view;
	uint64_t size, page_size;
	int writable; /* mount writable and view writable */
	struct seq_state seq;
	_Atomic int explicit_prefetch; /* got a PREFETCH request: no read-around */
	/*
	 * Guarded by daemon.kc_lock.  kc: pages charged to the budget (the
	 * kernel may cache some of their blocks); kfull: pages whose every
	 * block was pushed into the kernel, or whose push is queued.
	 */
	struct kbitmap kc, kfull;
	/* NODE_TEXT */
	char *text;
	size_t text_len;
};

/* Options from the command line. */
struct options {
	char *source; /* owned copies */
	char *mountpoint;
	char *source_abs, *mountpoint_abs;
	uint64_t page_size, buffer_size, staging_size, prefetch, readahead, readaround;
	int have_staging, have_prefetch, have_readahead, have_readaround;
	int policy;
	char *plugin;
	int writable;
	int foreground, debug;
	unsigned threads, io_threads;
	char *fuse_opts;   /* comma list handed to libfuse */
	char *plugin_opts; /* comma list handed to the plugin */
};

#define KC_THREADS 2 /* notifier threads: pushes are copies, and one core cannot keep up */

/* One queued kernel-cache operation (kcache.c). */
struct kc_event {
	struct kc_event *next;
	int store; /* 1: notify_store of data, 0: notify_inval_inode */
	int cancelled; /* store: its page was invalidated before the push */
	struct node *node;
	uint64_t off, len;
};

/* One entry of the FIFO of pages the kernel may cache. */
struct kc_entry {
	uint32_t node;
	uint64_t page;
};

struct daemon_counters {
	_Atomic uint64_t reads, read_bytes, writes, write_bytes, flushes, flush_errors;
	_Atomic uint64_t stores, store_bytes, invals, inval_bytes;
	_Atomic uint64_t prefetch_requests, copied_reads, ioctl_prefetches, readaround_prefetches;
};

struct daemon {
	struct options opt;
	struct umapfs_engine *engine;
	struct fuse_session *se;
	uid_t uid;
	gid_t gid;
	struct timespec mount_time;

	/* plugin */
	void *dl;
	struct umapfs_plugin plugin; /* copy, zero-extended */
	void *plugin_state;
	struct host *host;

	/* files */
	struct node **nodes;
	size_t n_nodes, cap_nodes;

	/* kernel-cache manager */
	pthread_mutex_t kc_lock;
	pthread_cond_t kc_cond;
	struct kc_event *q_head, *q_tail;     /* pushes, in fill order */
	struct kc_event *inv_head, *inv_tail; /* invalidations: served first */
	uint64_t push_backlog;                /* bytes of pushes queued or running */
	int kc_stop, kc_running; /* kc_running: notifier threads started */
	/*
	 * The notifier threads (the first runs invalidations too), each with
	 * the page whose push it is running: an invalidation of that page
	 * waits for the push (kc_done), so it never lands first and leaves the
	 * kernel a page the budget dropped.
	 */
	struct kc_worker {
		struct daemon *d;
		pthread_t thread;
		struct node *busy; /* NULL: no push running */
		uint64_t busy_page;
	} kc_workers[KC_THREADS];
	pthread_cond_t kc_done;
	int push; /* some view is read-only: filled pages are pushed */
	struct kc_entry *fifo; /* ring */
	size_t fifo_cap, fifo_head, fifo_len;
	uint64_t kc_bytes, kc_budget;
	uint64_t kc_slack;      /* over budget: drop to kc_budget - kc_slack at once (see evict_locked) */
	struct kc_entry *batch; /* the pages of one such drop, sorted to merge neighbours */
	size_t batch_cap;

	/* bdi readahead, applied once after INIT */
	char bdi[64];
	atomic_int bdi_done;

	/*
	 * Bytes of pages READ replies may hold pinned at once.  A request
	 * whose pages do not fit is answered by copying page by page, so pins
	 * never exhaust the engine's staging buffer (which would deadlock).
	 */
	pthread_mutex_t pin_lock;
	uint64_t pin_budget, pin_avail;

	atomic_int detached; /* lazily unmounted after a signal */
	struct daemon_counters c;
};

/* main.c */
void dlog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dlog_engine(void *arg, int level, const char *msg);

/* ops.c */
extern const struct fuse_lowlevel_ops umapfs_ops;
struct node *node_by_ino(struct daemon *d, fuse_ino_t ino);

/* kcache.c */
int kc_init(struct daemon *d);
int kc_start(struct daemon *d);
void kc_stop(struct daemon *d);
void kc_fini(struct daemon *d);
void kc_note(struct daemon *d, struct node *n, uint64_t first_page, uint64_t last_page);
void kc_filled(void *arg, struct umapfs_view *v, uint64_t off, const void *data, size_t len);
void kc_push(struct node *n, uint64_t off, size_t len, int from_read);
int kc_pushed(struct daemon *d, struct node *n, uint64_t page);
uint64_t kc_count(struct daemon *d, struct node *n, uint64_t first, uint64_t end, uint64_t *spare,
		  uint64_t *backlog);
int kc_evicting(void *arg, struct umapfs_view *v, uint64_t off, void *data, size_t len);
void kbitmap_free(struct kbitmap *b);
void apply_readahead(struct daemon *d);

#endif
