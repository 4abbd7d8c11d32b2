/*
 * Replacement policies behind a small interface (struct policy_ops).
 *
 * All three keep resident, unclaimed pages on one doubly linked list and run
 * under e->policy_lock, except touch(), which a hit calls without any lock:
 *   FIFO   list in fill order; a hit changes nothing.
 *   CLOCK  the list is a ring with a hand; a hit sets the page's reference
 *          bit; the hand clears set bits and takes the first clear one.
 *   LRU    exact least-recently-used without locking hits: a hit stores a
 *          fresh stamp in the page; the list is ordered by the stamp each page
 *          had when it was (re)positioned.  Since stamps only grow, a head
 *          whose stamp is unchanged is the true LRU page; a head used since is
 *          moved to its sorted place (near the tail) lazily, at eviction time.
 * Pinned pages are skipped by claim() failing; they keep their place.
 */
#include <errno.h>

#include "engine_i.h"

static void list_unlink(struct policy *pol, struct page *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		pol->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		pol->tail = p->prev;
	p->prev = p->next = NULL;
	pol->count--;
	p->in_policy = false;
}

static void list_append(struct policy *pol, struct page *p)
{
	p->next = NULL;
	p->prev = pol->tail;
	if (pol->tail)
		pol->tail->next = p;
	else
		pol->head = p;
	pol->tail = p;
	pol->count++;
	p->in_policy = true;
}

/* ---- FIFO ---- */

static void fifo_insert(struct policy *pol, struct page *p) { list_append(pol, p); }

static void fifo_remove(struct policy *pol, struct page *p)
{
	if (p->in_policy)
		list_unlink(pol, p);
}

static void fifo_touch(struct policy *pol, struct page *p) { (void)pol, (void)p; }

static struct page *fifo_victim(struct policy *pol, policy_claim_fn claim)
{
	for (struct page *p = pol->head; p; p = p->next) {
		if (claim(p)) {
			list_unlink(pol, p);
			return p;
		}
	}
	return NULL;
}

/* ---- CLOCK: the list read as a ring starting at the hand ---- */

static void clock_insert(struct policy *pol, struct page *p)
{
	atomic_store_explicit(&p->ref, 0, memory_order_relaxed);
	/* Insert just behind the hand: the last place the hand will reach. */
	if (!pol->hand) {
		list_append(pol, p);
		pol->hand = p;
		return;
	}
	struct page *h = pol->hand;
	p->next = h;
	p->prev = h->prev;
	if (h->prev)
		h->prev->next = p;
	else
		pol->head = p;
	h->prev = p;
	pol->count++;
	p->in_policy = true;
}

static struct page *clock_next(struct policy *pol, struct page *p)
{
	return p->next ? p->next : pol->head;
}

static void clock_remove(struct policy *pol, struct page *p)
{
	if (!p->in_policy)
		return;
	if (pol->hand == p)
		pol->hand = pol->count > 1 ? clock_next(pol, p) : NULL;
	list_unlink(pol, p);
}

static void clock_touch(struct policy *pol, struct page *p)
{
	(void)pol;
	if (!atomic_load_explicit(&p->ref, memory_order_relaxed))
		atomic_store_explicit(&p->ref, 1, memory_order_relaxed);
}

static struct page *clock_victim(struct policy *pol, policy_claim_fn claim)
{
	/* Two full turns: the first may only clear reference bits. */
	size_t steps = 2 * pol->count + 1;
	struct page *p = pol->hand;

	while (p && steps--) {
		struct page *nx = clock_next(pol, p);
		if (atomic_load_explicit(&p->ref, memory_order_relaxed)) {
			atomic_store_explicit(&p->ref, 0, memory_order_relaxed);
		} else if (claim(p)) {
			pol->hand = p;
			clock_remove(pol, p);
			return p;
		}
		p = nx;
		pol->hand = p;
	}
	return NULL;
}

/* ---- LRU ---- */

static void lru_insert(struct policy *pol, struct page *p)
{
	uint64_t s = atomic_fetch_add_explicit(&pol->clock, 1, memory_order_relaxed) + 1;
	atomic_store_explicit(&p->last_use, s, memory_order_relaxed);
	p->list_stamp = s;
	list_append(pol, p);
}

static void lru_touch(struct policy *pol, struct page *p)
{
	uint64_t s = atomic_fetch_add_explicit(&pol->clock, 1, memory_order_relaxed) + 1;
	atomic_store_explicit(&p->last_use, s, memory_order_relaxed);
}

/* Move p (unlinked) to its place in list_stamp order, searching from the tail. */
static void lru_place(struct policy *pol, struct page *p)
{
	struct page *at = pol->tail;
	while (at && at->list_stamp > p->list_stamp)
		at = at->prev;
	if (!at) {
		p->prev = NULL;
		p->next = pol->head;
		if (pol->head)
			pol->head->prev = p;
		else
			pol->tail = p;
		pol->head = p;
	} else {
		p->prev = at;
		p->next = at->next;
		if (at->next)
			at->next->prev = p;
		else
			pol->tail = p;
		at->next = p;
	}
	pol->count++;
	p->in_policy = true;
}

static struct page *lru_victim(struct policy *pol, policy_claim_fn claim)
{
	/* Each page is re-placed at most once per pass (unless touched meanwhile). */
	size_t steps = 3 * pol->count + 1;
	struct page *p = pol->head;

	while (p && steps--) {
		struct page *nx = p->next;
		uint64_t lu = atomic_load_explicit(&p->last_use, memory_order_relaxed);
		if (lu != p->list_stamp) {
			list_unlink(pol, p);
			p->list_stamp = lu;
			lru_place(pol, p);
			/* p may now sit before nx (nx was filled after p's last use): start over */
			nx = pol->head;
		} else if (claim(p)) {
			list_unlink(pol, p);
			return p;
		}
		p = nx;
	}
	return NULL;
}

static const struct policy_ops fifo_ops = {
	"fifo", fifo_insert, fifo_remove, fifo_touch, fifo_victim,
};
static const struct policy_ops clock_ops = {
	"clock", clock_insert, clock_remove, clock_touch, clock_victim,
};
static const struct policy_ops lru_ops = {
	"lru", lru_insert, fifo_remove, lru_touch, lru_victim,
};

/* Initialise an empty policy of kind `which`.  Returns 0 or -EINVAL. */
int policy_init(struct policy *pol, int which)
{
	pol->head = pol->tail = pol->hand = NULL;
	pol->count = 0;
	atomic_store(&pol->clock, 0);
	switch (which) {
	case UMAPFS_POLICY_FIFO: pol->ops = &fifo_ops; return 0;
	case UMAPFS_POLICY_CLOCK: pol->ops = &clock_ops; return 0;
	case UMAPFS_POLICY_LRU: pol->ops = &lru_ops; return 0;
	default: return -EINVAL;
	}
}
