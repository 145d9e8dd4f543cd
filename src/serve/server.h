/*
 * server — `nightjar serve`: HTTP/1.1 on a Unix socket and/or loopback TCP,
 * OpenAI-compatible routes in front of the engine thread (worker.h).
 *
 * Threads.
 *   - main thread: builds everything, then sits in sigwait() (server_run):
 *     SIGHUP reloads the config file, SIGTERM/SIGINT shut down.  All other
 *     threads are created with these signals blocked (server_new blocks them
 *     before creating any thread), so they are only ever seen here.
 *   - libmicrohttpd, one daemon per listener, thread per connection: a
 *     listening thread that sleeps in poll() without a timeout, and one
 *     thread per open connection that sleeps in poll() (connection timeout
 *     0: no periodic wakeups) or blocks in our handlers waiting for the
 *     engine.  Blocking there is what thread-per-connection mode allows, and
 *     it keeps streaming simple: the SSE content callback waits on the
 *     request's condvar for the next released text.
 *   - the engine thread (worker.c) runs requests one at a time.
 *   - with `watch` configured, the agent's loop (servewatch.h) on its own
 *     thread, plus one delivery thread per sink: it follows the sources and
 *     hands each event to the engine thread as a low-priority task.
 *   /health and /metrics only take short locks (worker.mu, metrics.mu,
 *   server.mu) that the engine never holds while evaluating, so they answer
 *   while a long prompt is being processed.
 *
 * Routes live in one table (method, path, handler) in server.c; a new
 * endpoint such as POST /v1/analyze is one row and one function.
 *
 * Shutdown (SIGTERM/SIGINT): stop accepting (MHD_quiesce_daemon), stop the
 * watch loop (its batch in progress finishes), answer 503
 * to new requests on kept-alive connections, wait up to shutdown_timeout for
 * queued and running requests to finish and their responses to be sent, then
 * cancel what is left, stop the engine and the daemons; server_run returns 0.
 *
 * Reload (SIGHUP): the configuration is rebuilt from the same flags, the
 * environment and the (re-read) file.  Settings marked live in config.c
 * apply at once: token, log_level, idle_unload, max_tokens, max_body,
 * max_queue, shutdown_timeout.  Others (model, socket, host, port, threads,
 * nice, ctx_size, kv_type, mem_budget, qos, chat_template, max_connections)
 * are logged as needing a restart and keep their running values.
 */
#ifndef NJ_SERVER_H
#define NJ_SERVER_H

#include "config.h"

typedef struct nj_server nj_server;

/* Block SIGTERM, SIGINT, SIGHUP (and ignore SIGPIPE) in the calling thread;
 * threads created afterwards inherit the mask.  Called by server_new. */
int server_block_signals(void);

/* Apply nice/QoS, load the model, open the listeners and start serving.
 * argv/envp are kept (borrowed) for SIGHUP reloads.  NULL with *err and
 * nj_last_error() on failure. */
nj_server *server_new(const nj_config *cfg, int argc, char **argv, char *const *envp, int *err);

/* Wait for signals; on SIGTERM/SIGINT shut down gracefully and return 0
 * (also when requests had to be cancelled at the timeout: that is logged).
 * The caller then calls server_free. */
int  server_run(nj_server *s);
void server_free(nj_server *s);

/* Where the Unix socket listens ("" if none); static for the server's life. */
const char *server_socket_path(const nj_server *s);

#endif
