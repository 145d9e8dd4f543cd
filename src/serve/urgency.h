/*
 * urgency — the urgency order of the service's scheduler, as pure functions.
 *
 * The worker (worker.h) decides at every step which request runs next and
 * which waiting request may take a free slot.  The rules live here, apart
 * from threads and the model, so they can be tested on a simulated clock:
 *
 *   - A request has a class (0 = critical ... 3 = bulk), an optional
 *     absolute deadline and a submission number.
 *   - Its effective class is its class minus one for every aging_ms it has
 *     waited since it last ran a step (since submission before its first),
 *     with no floor: a request of class c that keeps losing is more urgent
 *     than any fresh request after (c + 1) x aging_ms, so it runs a step
 *     within that bound plus one step of whatever runs (bounded
 *     starvation).  aging_ms 0 turns aging off (strict classes).
 *   - Order: the lower effective class; then the earlier deadline (none
 *     counts as infinitely late); then the earlier submission.
 *   - Admission: with more than one slot, a request whose effective class
 *     is normal or bulk may not take the last free slot, so urgent work
 *     always finds one unless urgent work fills them all.
 *
 * No state, no threads, no allocation.
 */
#ifndef NJ_URG_H
#define NJ_URG_H

#include <stdbool.h>

enum { URG_CRITICAL = 0, URG_HIGH = 1, URG_NORMAL = 2, URG_BULK = 3, URG_NCLASS = 4 };

typedef struct urgency_key {
    int    prio;                /* URG_* */
    double deadline;            /* absolute seconds; INFINITY: none */
    double last_served;         /* seconds: submission, then the end of its latest step */
    unsigned long long seq;     /* submission order */
} urgency_key;

/* The class the request competes with at time now (may be negative). */
int  urgency_class(const urgency_key *k, double now, int aging_ms);
/* true if a runs before b at time now. */
bool urgency_before(const urgency_key *a, const urgency_key *b, double now, int aging_ms);
/* true if a request of effective class eff may take one of free_slots free
 * slots out of n_slots. */
bool urgency_may_admit(int eff, int free_slots, int n_slots);

#endif
