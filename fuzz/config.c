/*
 * fuzz/config — libFuzzer target for the service's configuration file
 * reader (config_read_file, then config_validate), the text a SIGHUP
 * re-reads.
 *
 * Properties checked:
 *   - any file is either read or refused with a negative code and a
 *     non-empty sentence naming the file;
 *   - a file that was read leaves every setting within its documented
 *     range (config_validate may still refuse a combination, with a
 *     sentence);
 *   - config_free after either leaks nothing (nj_mem_in_use returns to its
 *     starting value).
 * The input is handed over as a memfd (/proc/self/fd/N), so the real
 * fopen/fgets path runs without touching the disk.  Built and run by
 * scripts/fuzz.
 */
#include "config.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("njcfg", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    size_t before = nj_mem_in_use();
    nj_config c;
    config_defaults(&c);
    nj_clear_error();
    int rc = config_read_file(&c, path);
    if (rc > 0) abort();
    if (rc < 0 && !strstr(nj_last_error(), path)) abort();
    if (rc == 0) {
        if (c.threads < 1 || c.ctx_size < 1 || c.max_body < 1 || c.max_connections < 1 || c.max_queue < 1 ||
            c.analyze_batch < 1 || c.max_tokens < 1 || c.idle_unload < 0 || c.shutdown_timeout < 0)
            abort();
        nj_clear_error();
        if (config_validate(&c) < 0 && !nj_last_error()[0]) abort();
    }
    config_free(&c);
    if (nj_mem_in_use() != before) abort();
    close(fd);
    return 0;
}
