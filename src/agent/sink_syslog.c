/*
 * sink_syslog — verdicts as RFC 5424 syslog messages.
 *
 * One message per verdict:
 *
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID params] MSG
 *   <133>1 2026-12-07T11:22:33.123Z laptop-1 nightjar 4242 verdict
 *          [nightjar@32473 seq="17" event_id="auditd:h:1.2:3" source="auditd"
 *           attempt="1" redelivery="false"] {"verdict":...}
 *
 * PRI = facility * 8 + severity (defaults local0 and notice: 133).
 * TIMESTAMP is the verdict's judged_at in UTC with milliseconds.  MSGID is
 * "verdict".  The structured data element carries what a collector needs to
 * de-duplicate without parsing MSG.  Its SD-ID must have the form
 * NAME@PEN, PEN being an IANA Private Enterprise Number; nightjar has none
 * of its own, so the default uses 32473, the number RFC 5612 reserves for
 * documentation and examples.  Deployments that route on SD-ID should set
 * sd_id= to a name under their organisation's number.  PARAM-VALUEs escape
 * '"', '\' and ']' with a backslash (RFC 5424 6.3.3).
 *
 * MSG is the payload (sink.h) with every non-ASCII character written as a
 * JSON \uXXXX escape, so it is 7-bit clean MSG-ANY and needs no BOM while
 * meaning exactly the same JSON.
 *
 * Transports:
 *   unix  datagram to a local socket (/dev/log); one message per datagram.
 *   udp   one message per datagram (RFC 5426).  A message larger than a
 *         datagram can carry fails permanently: use tcp for big verdicts.
 *         UDP is fire and forget: a datagram the network or the collector
 *         drops is not noticed (an ICMP refusal only fails the next send).
 *   tcp   octet-counting framing, "LEN SP MSG" (RFC 6587 3.4.1).  Syslog
 *         over TCP has no acknowledgement: items count as delivered when
 *         the kernel took them and the connection still looked healthy
 *         after the batch (no error, no EOF from the peer).  A batch cut by
 *         an error is reported as SINK_MAYBE for what was already written,
 *         so it is re-sent flagged as a redelivery.  For end-to-end
 *         acknowledgement use the webhook sink.
 * Connections are made lazily on the first send and dropped on any error,
 * to be made again on the next batch.  Connect and send time out after 5 s.
 *
 * Threads: one thread at a time (sink.h).
 */
#include "sink_impl.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SYSLOG_TIMEOUT_MS 5000
#define UDP_MAX 65507

typedef struct syslog_sink {
    sink base;
    int fd;
    char hostname[256];
} syslog_sink;

static void drop(syslog_sink *y) {
    if (y->fd >= 0) close(y->fd);
    y->fd = -1;
}

/* Non-blocking connect with a deadline, then back to blocking with a send
 * timeout.  0 or -errno (fd closed on failure). */
static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len) {
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int rc = connect(fd, sa, len);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r = poll(&p, 1, SYSLOG_TIMEOUT_MS);
        if (r == 0) { errno = ETIMEDOUT; rc = -1; }
        else if (r > 0) {
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            if (soerr) { errno = soerr; rc = -1; } else rc = 0;
        }
    }
    if (rc != 0) return -errno;
    fcntl(fd, F_SETFL, fl);
    struct timeval tv = {SYSLOG_TIMEOUT_MS / 1000, (SYSLOG_TIMEOUT_MS % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return 0;
}

static int ensure_connected(syslog_sink *y) {
    if (y->fd >= 0) return 0;
    const sink_spec *sp = &y->base.spec;
    if (sp->transport == SINK_UNIX) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sp->path);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return nj_fail(-errno, "syslog sink: socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            int e = errno;
            close(fd);
            return nj_fail(-e, "syslog sink: connect %s: %s", sp->path, strerror(e));
        }
        y->fd = fd;
        return 0;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", sp->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = sp->transport == SINK_UDP ? SOCK_DGRAM : SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(sp->host, port, &hints, &ai);
    if (g != 0) return nj_fail(NJ_ENET, "syslog sink: cannot resolve %s: %s", sp->host, gai_strerror(g));
    int last = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) { last = -errno; continue; }
        int rc = sp->transport == SINK_UDP ? (connect(fd, a->ai_addr, a->ai_addrlen) ? -errno : 0)
                                           : connect_timeout(fd, a->ai_addr, a->ai_addrlen);
        if (rc == 0) { y->fd = fd; break; }
        last = rc;
        close(fd);
    }
    freeaddrinfo(ai);
    if (y->fd < 0)
        return nj_fail(last, "syslog sink: connect %s:%d: %s", sp->host, sp->port, strerror(-last));
    return 0;
}

/* SD-PARAM value with '"', '\' and ']' escaped, control bytes as spaces. */
static void sd_value(sbuf *b, const char *v) {
    for (; *v; v++) {
        char c = *v;
        if (c == '"' || c == '\\' || c == ']') sbuf_add(b, "\\", 1);
        if ((unsigned char)c < 0x20 || c == 0x7f) c = ' ';
        sbuf_add(b, &c, 1);
    }
}

/* The whole RFC 5424 message for one item into b (b is reset first). */
static int format_message(syslog_sink *y, const spool_delivery *d, sbuf *b) {
    const sink_spec *sp = &y->base.spec;
    char *payload = NULL;
    size_t plen = 0;
    int rc = sink_payload(d, &payload, &plen);
    if (rc) return rc;
    b->len = 0;
    time_t secs = (time_t)(d->judged_at / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[40];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    sbuf_fmt(b, "<%d>1 %s.%03dZ %s %s %ld verdict [%s seq=\"%lld\" event_id=\"",
             sp->facility * 8 + sp->severity, ts, (int)(d->judged_at % 1000), y->hostname,
             sp->app, (long)getpid(), sp->sd_id, (long long)d->seq);
    sd_value(b, d->event_id ? d->event_id : "");
    sbuf_str(b, "\" source=\"");
    sd_value(b, d->source ? d->source : "");
    sbuf_fmt(b, "\" attempt=\"%d\" redelivery=\"%s\"] ", d->attempts,
             d->redelivery ? "true" : "false");
    sbuf_json_ascii(b, payload, plen);
    nj_free(payload);
    return b->oom ? nj_fail(-ENOMEM, "syslog sink: out of memory") : 0;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* After a TCP batch: an error or EOF from the peer means what we wrote may
 * not have arrived. */
static int tcp_healthy(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) return 1;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return 0;
    char buf[256];
    ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

static int syslog_send(sink *s, const spool_delivery *items, size_t n, sink_result *res) {
    syslog_sink *y = (syslog_sink *)s;
    const sink_spec *sp = &s->spec;
    if (ensure_connected(y) != 0) {
        for (size_t i = 0; i < n; i++) sink_set(&res[i], SINK_RETRY, "%s", nj_last_error());
        return 0;
    }
    sbuf b = {0};
    bool tcp = sp->transport == SINK_TCP, broken = false;
    for (size_t i = 0; i < n && !broken; i++) {
        int rc = format_message(y, &items[i], &b);
        if (rc == NJ_EFORMAT) { sink_set(&res[i], SINK_PERMANENT, "%s", nj_last_error()); continue; }
        if (rc) { sink_set(&res[i], SINK_RETRY, "out of memory"); break; }
        if (tcp) {
            char hdr[24];
            int hl = snprintf(hdr, sizeof hdr, "%zu ", b.len);
            rc = send_all(y->fd, hdr, (size_t)hl);
            if (rc == 0) rc = send_all(y->fd, b.p, b.len);
        } else {
            if (sp->transport == SINK_UDP && b.len > UDP_MAX) {
                sink_set(&res[i], SINK_PERMANENT, "message of %zu bytes is larger than a UDP "
                         "datagram; use syslog:tcp", b.len);
                continue;
            }
            ssize_t w = send(y->fd, b.p, b.len, MSG_NOSIGNAL);
            rc = w == (ssize_t)b.len ? 0 : w < 0 ? -errno : -EIO;
        }
        if (rc == 0) { res[i].status = SINK_OK; res[i].error[0] = 0; continue; }
        if (rc == -EMSGSIZE) {
            sink_set(&res[i], SINK_PERMANENT, "message of %zu bytes too large for the socket", b.len);
            continue;
        }
        /* A stream cut mid-message may have delivered part or all of it. */
        sink_set(&res[i], tcp ? SINK_MAYBE : SINK_RETRY, "send: %s", strerror(-rc));
        broken = true;
    }
    if (tcp && !broken && !tcp_healthy(y->fd)) broken = true;
    if (broken) {
        if (tcp)
            for (size_t i = 0; i < n; i++)
                if (res[i].status == SINK_OK)
                    sink_set(&res[i], SINK_MAYBE, "connection failed after sending");
        drop(y);
    }
    sbuf_free(&b);
    return 0;
}

static void syslog_close(sink *s) {
    drop((syslog_sink *)s);
    sink_base_free(s);
}

static const struct sink_ops syslog_ops = {.send = syslog_send, .close = syslog_close};

sink *sink_syslog_open(const sink_spec *spec, int *err) {
    syslog_sink *y = nj_calloc(1, sizeof *y);
    int rc;
    if (!y) { rc = nj_fail(-ENOMEM, "syslog sink: out of memory"); goto err; }
    y->fd = -1;
    if ((rc = sink_base_init(&y->base, &syslog_ops, spec))) { nj_free(y); y = NULL; goto err; }
    if (!spec->app || !spec->sd_id || (spec->transport == SINK_UNIX ? !spec->path : !spec->host)) {
        rc = nj_fail(-EINVAL, "syslog sink: incomplete spec (use sink_spec_parse)");
        goto err;
    }
    /* HOSTNAME: 1..255 printable ASCII, else the nil value. */
    if (gethostname(y->hostname, sizeof y->hostname - 1) != 0 || !y->hostname[0])
        snprintf(y->hostname, sizeof y->hostname, "-");
    for (char *p = y->hostname; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) *p = '_';
    return &y->base;
err:
    if (err) *err = rc;
    if (y) syslog_close(&y->base);
    return NULL;
}
