/*
 * render — a canonical event as text for the model, and as a cache key.
 *
 * Purpose.  The model reads an event as a few short "field: value" lines,
 * far fewer tokens than the event's JSON, in a fixed order (what ran, as
 * whom, from what parent, where to), so that similar events read alike.
 * The verdict cache keys on the same rendering with the volatile parts
 * masked, so two runs of the same command by the same kind of parent are
 * one entry however their pids, times and temporary names differ.
 *
 * Untrusted text.  Every value comes from the event, which an attacker on
 * the machine may have written.  Values are rendered as JSON strings: quotes,
 * backslashes and control characters (newlines included) are escaped, so a
 * value can never start a line of its own; and '<' and '>' are escaped as
 * \u003c and \u003e, so a value can never close the <event> fence the
 * prompt puts around the rendering.  (Control tokens are kept out by the
 * chat tokenizer, which fences message contents.)
 *
 * Ownership: the functions write into a caller's buffer (rbuf) that grows
 * through nj_realloc; rbuf_free releases it.  No shared state.
 */
#ifndef NJ_RENDER_H
#define NJ_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef struct rbuf {
    char  *s;
    size_t len, cap;
    bool   oom;     /* an append failed: the content is incomplete */
} rbuf;

void rbuf_free(rbuf *b);
void rbuf_reset(rbuf *b);
void rbuf_put(rbuf *b, const char *s, size_t n);
void rbuf_puts(rbuf *b, const char *s);
void rbuf_printf(rbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* s[0..n) as a JSON string (quotes included), '<' and '>' escaped too. */
void rbuf_put_quoted(rbuf *b, const char *s, size_t n);

/* Bytes of one value rendered: a longer value keeps its first and last
 * half of this (at character boundaries) and says how much was cut between,
 * so one huge command line cannot overflow the context, nor can padding
 * hide its end.  (Rules always see the whole value.) */
#define RENDER_VALUE_MAX 1536

/* The event's lines for the prompt (no fence; the caller adds it).  With
 * mask, volatile parts are replaced by placeholders: pids and ports by
 * <n>, temporary file names by their directory plus <tmp>, long hex or
 * base64-looking runs by <hex>; the id, time, host and raw text are left
 * out.  Returns 0, or -ENOMEM (b->oom). */
int render_event(rbuf *b, const json_t *ev, bool mask);

/* The text retrieval searches with: the command line (argv joined when only
 * argv is known), else the rendering's most telling line (auth: "sshd
 * failed password invalid user root"; network: "connect tcp 4444").
 * Borrowed from ev or written into b; *len set.  NULL when there is none. */
const char *render_query(rbuf *b, const json_t *ev, size_t *len);

#endif
