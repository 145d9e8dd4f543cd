/*
 * insncount — a qemu-user TCG plugin that counts the guest instructions a
 * program executes; for the ARM measurements in bench/ (bench/arm-insn,
 * bench/arm-mca), never part of the product.
 *
 * Modes (plugin arguments, key=value):
 *   out=FILE            write "insns N" to FILE at exit (default: stderr
 *                       through qemu_plugin_outs);
 *   on=ADDR,off=ADDR    count only between the execution of the
 *                       instruction at ADDR on (hex; say the entry of an
 *                       empty marker function) and that at ADDR off;
 *   trace=FILE          with on/off: also write the pc of every instruction
 *                       executed in that window to FILE, one hex a line
 *                       (the dynamic instruction stream of one kernel call
 *                       and its callees, which bench/arm-mca feeds to
 *                       llvm-mca).
 * Plain counting uses qemu's inline add per translated block, so the guest
 * runs at nearly full TCG speed; the window mode calls back on every
 * instruction (slow, for short runs).  The counters are plain (not
 * atomic): measure single-threaded guests.
 *
 * Written against the plugin interface of QEMU 7.2 (API version 1); the
 * few declarations it needs are below, so no QEMU headers are required.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the plugin interface used here (QEMU 7.2, API version 1) ---- */
typedef uint64_t qemu_plugin_id_t;
typedef struct {
    const char *target_name;
    struct { int min, cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus, max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*udata_cb)(qemu_plugin_id_t id, void *userdata);
typedef void (*vcpu_udata_cb)(unsigned int vcpu_index, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
                                                void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, vcpu_udata_cb cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb cb, void *userdata);
void qemu_plugin_outs(const char *string);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

/* ---- state ---- */
static uint64_t count;
static uint64_t pc_on, pc_off;
static bool windowed, active;
static const char *out_path;   /* points into argv, which lives as long as the plugin */
static FILE *trace;

static void on_insn(unsigned int vcpu, void *p) {
    (void)vcpu;
    const uint64_t pc = (uint64_t)(uintptr_t)p;
    if (pc == pc_on) active = true;
    else if (pc == pc_off) active = false;
    if (!active) return;
    count++;
    if (trace) fprintf(trace, "%" PRIx64 "\n", pc);
}

/* Instrument a block: one inline add for the whole block, or a callback
 * per instruction in window mode. */
static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    const size_t n = qemu_plugin_tb_n_insns(tb);
    if (!windowed) {
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &count, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint64_t pc = qemu_plugin_insn_vaddr(insn);
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_insn, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)pc);
    }
}

static void at_end(qemu_plugin_id_t id, void *p) {
    (void)id; (void)p;
    char line[64];
    snprintf(line, sizeof line, "insns %" PRIu64 "\n", count);
    if (trace) fclose(trace);
    FILE *f = out_path ? fopen(out_path, "w") : NULL;
    if (f) { fputs(line, f); fclose(f); }
    else qemu_plugin_outs(line);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "out=", 4) == 0) out_path = a + 4;
        else if (strncmp(a, "on=", 3) == 0) { pc_on = strtoull(a + 3, NULL, 16); windowed = true; }
        else if (strncmp(a, "off=", 4) == 0) { pc_off = strtoull(a + 4, NULL, 16); windowed = true; }
        else if (strncmp(a, "trace=", 6) == 0) {
            trace = fopen(a + 6, "w");
            if (!trace) { fprintf(stderr, "insncount: cannot write %s\n", a + 6); return -1; }
        } else {
            fprintf(stderr, "insncount: unknown argument %s (out=, on=, off=, trace=)\n", a);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
    qemu_plugin_register_atexit_cb(id, at_end, NULL);
    return 0;
}
