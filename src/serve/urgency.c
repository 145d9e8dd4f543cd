/*
 * urgency — see urgency.h for the rules.
 */
#include "urgency.h"

int urgency_class(const urgency_key *k, double now, int aging_ms) {
    int c = k->prio;
    if (aging_ms > 0 && now > k->last_served) {
        double steps = (now - k->last_served) * 1000.0 / aging_ms;
        c -= steps > 1e6 ? 1000000 : (int)steps;
    }
    return c;
}

bool urgency_before(const urgency_key *a, const urgency_key *b, double now, int aging_ms) {
    int ea = urgency_class(a, now, aging_ms), eb = urgency_class(b, now, aging_ms);
    if (ea != eb) return ea < eb;
    if (a->deadline != b->deadline) return a->deadline < b->deadline;
    return a->seq < b->seq;
}

bool urgency_may_admit(int eff, int free_slots, int n_slots) {
    int reserve = n_slots > 1 && eff >= URG_NORMAL ? 1 : 0;
    return free_slots > reserve;
}
