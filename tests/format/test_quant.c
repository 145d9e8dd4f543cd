/* test_quant — the scalar reference of every tensor type.
 *
 *  - fp16/bf16 conversion: exhaustive over all fp16 values (round trip, and
 *    rounding of every midpoint between neighbours), special values.
 *  - every type: quantize -> dequantize error within a per-type bound on
 *    seeded random data; vec_dot equal to the float dot product of the
 *    dequantized operands; trait table consistency.
 *  - golden vectors (tests/data/quant_golden.bin, tools/gen_quant_golden.py):
 *    to_float equal bit for bit to gguf-py's dequantization; the file
 *    quantizers equal to gguf-py / llama.cpp's ggml_quantize_chunk; the
 *    activation quantizers equal to llama.cpp's x86 CPU from_float; vec_dot
 *    equal to ggml's generic C dot and close to its SIMD dot.
 */
#include "testutil.h"
#include "quant.h"
#include "kernels.h"

#include <float.h>
#include <math.h>

static const int ALL_TYPES[] = {NJ_F32, NJ_F16, NJ_BF16, NJ_Q4_0, NJ_Q4_1, NJ_Q5_0, NJ_Q5_1,
                                NJ_Q8_0, NJ_Q8_1, NJ_Q2_K, NJ_Q3_K, NJ_Q4_K, NJ_Q5_K, NJ_Q6_K, NJ_Q8_K};
#define NTYPES ((int)(sizeof ALL_TYPES / sizeof ALL_TYPES[0]))

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* xorshift64*, and a gaussian from it (Box-Muller). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static void rng_seed(uint64_t s) { rng_state = s ? s : 1; }
static uint64_t rng_u64(void) {
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static double rng_unif(void) { return ((rng_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
/* NJ_TEST_SEED overrides the fixed seed, to explore error bounds. */
static uint64_t seed_base(void) {
    const char *e = getenv("NJ_TEST_SEED");
    return e ? strtoull(e, NULL, 10) : 1000;
}
static float rng_gauss(void) {
    return (float)(sqrt(-2.0 * log(rng_unif())) * cos(6.283185307179586 * rng_unif()));
}

/* ------------------------------------------------------------------ fp16 */

static void test_fp16_roundtrip_exhaustive(void **st) {
    (void)st;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nj_fp16_to_fp32((uint16_t)h);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan) {
            assert_true(isnan(f));
            uint16_t back = nj_fp32_to_fp16(f);
            assert_true((back & 0x7c00) == 0x7c00 && (back & 0x3ff));
            assert_int_equal(back & 0x8000, h & 0x8000);
        } else {
            assert_int_equal(nj_fp32_to_fp16(f), h);
        }
    }
}

/* Between two adjacent finite fp16 values a < b (same sign), the midpoint
 * must round to the one with the even mantissa, and anything strictly
 * inside must round to the nearer one. */
static void test_fp16_rounding_exhaustive(void **st) {
    (void)st;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        for (uint32_t sign = 0; sign <= 0x8000; sign += 0x8000) {
            uint16_t lo = (uint16_t)(h | sign), hi = (uint16_t)((h + 1) | sign);
            double a = nj_fp16_to_fp32(lo), b = nj_fp16_to_fp32(hi);
            float mid = (float)((a + b) / 2);          /* exact in f32 */
            assert_true((double)mid == (a + b) / 2);
            uint16_t even = (h & 1) ? hi : lo;
            assert_int_equal(nj_fp32_to_fp16(mid), even);
            /* one f32 ulp towards each side */
            float toward_a = nextafterf(mid, (float)a), toward_b = nextafterf(mid, (float)b);
            assert_int_equal(nj_fp32_to_fp16(toward_a), lo);
            assert_int_equal(nj_fp32_to_fp16(toward_b), hi);
        }
    }
}

static void test_fp16_special(void **st) {
    (void)st;
    assert_int_equal(nj_fp32_to_fp16(0.0f), 0x0000);
    assert_int_equal(nj_fp32_to_fp16(-0.0f), 0x8000);
    assert_int_equal(nj_fp32_to_fp16(1.0f), 0x3c00);
    assert_int_equal(nj_fp32_to_fp16(65504.0f), 0x7bff);
    assert_int_equal(nj_fp32_to_fp16(65519.996f), 0x7bff);   /* just below the midpoint to 65536 */
    assert_int_equal(nj_fp32_to_fp16(65520.0f), 0x7c00);     /* midpoint ties to "even" = inf */
    assert_int_equal(nj_fp32_to_fp16(1e10f), 0x7c00);
    assert_int_equal(nj_fp32_to_fp16(-INFINITY), 0xfc00);
    assert_int_equal(nj_fp32_to_fp16(0x1p-24f), 0x0001);     /* smallest subnormal */
    assert_int_equal(nj_fp32_to_fp16(0x1p-25f), 0x0000);     /* half of it: ties to even (0) */
    assert_int_equal(nj_fp32_to_fp16(0x1.8p-24f), 0x0002);   /* 1.5 units: ties to even (2) */
    assert_int_equal(nj_fp32_to_fp16(nextafterf(0x1p-25f, 1.0f)), 0x0001);
    assert_int_equal(nj_fp32_to_fp16(-1e-30f), 0x8000);
    assert_int_equal(nj_fp32_to_fp16(FLT_MIN), 0x0000);
    assert_int_equal(nj_fp32_to_fp16(0x1.ffcp-15f), 0x0400); /* rounds up into the normal range */
    uint16_t qn = nj_fp32_to_fp16(NAN);
    assert_true((qn & 0x7c00) == 0x7c00 && (qn & 0x0200));
    uint16_t sn = nj_fp32_to_fp16(bitsf(0x7f800001u));        /* signalling, low payload: stays NaN */
    assert_true((sn & 0x7c00) == 0x7c00 && (sn & 0x3ff));
    assert_true(nj_fp16_to_fp32(0x0001) == 0x1p-24f);
    assert_true(nj_fp16_to_fp32(0x03ff) == 0x1.ff8p-15f);
    assert_true(nj_fp16_to_fp32(0xfc00) == -INFINITY);
    assert_true(fbits(nj_fp16_to_fp32(0x8000)) == 0x80000000u);
}

static void test_bf16(void **st) {
    (void)st;
    /* exhaustive round trip of non-NaN bf16 */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nj_bf16_to_fp32((uint16_t)h);
        assert_int_equal(fbits(f), h << 16);
        if (!isnan(f)) assert_int_equal(nj_fp32_to_bf16(f), h);
        else assert_true(isnan(nj_bf16_to_fp32(nj_fp32_to_bf16(f))));
    }
    assert_int_equal(nj_fp32_to_bf16(bitsf(0x3f808000u)), 0x3f80);   /* tie, even below */
    assert_int_equal(nj_fp32_to_bf16(bitsf(0x3f818000u)), 0x3f82);   /* tie, even above */
    assert_int_equal(nj_fp32_to_bf16(bitsf(0x3f808001u)), 0x3f81);
    assert_int_equal(nj_fp32_to_bf16(bitsf(0x7f7fffffu)), 0x7f80);   /* FLT_MAX rounds to inf */
    assert_int_equal(nj_fp32_to_bf16(bitsf(0x7f800001u)), 0x7fc0);   /* sNaN -> quiet, not inf */
    assert_int_equal(nj_fp32_to_bf16(bitsf(0x00008000u)), 0x0000);   /* subnormal tie to even */
    assert_int_equal(nj_fp32_to_bf16(bitsf(0x00018000u)), 0x0002);
}

/* ------------------------------------------------------------------ traits */

static void test_traits_table(void **st) {
    (void)st;
    for (int k = 0; k < NTYPES; k++) {
        const nj_type_traits *t = quant_traits_ref(ALL_TYPES[k]);
        assert_non_null(t);
        assert_non_null(t->to_float);
        assert_non_null(t->from_float);
        assert_non_null(t->vec_dot);
        assert_non_null(quant_file_quantizer(ALL_TYPES[k]));
        assert_non_null(quant_traits_ref(t->vec_dot_type));
        assert_int_equal(quant_traits_ref(t->vec_dot_type)->blck, t->blck == 1 ? 1 : t->blck);
        assert_ptr_equal(kernels_traits(ALL_TYPES[k]), kernels_traits(ALL_TYPES[k]));
        assert_int_equal(quant_row_size(ALL_TYPES[k], 4 * 256), 4 * 256 / t->blck * t->size);
    }
    assert_null(quant_traits_ref(4));
    assert_null(quant_traits_ref(-1));
    assert_null(quant_traits_ref(NJ_TYPE_COUNT));
    assert_null(quant_file_quantizer(5));
    assert_int_equal(quant_row_size(NJ_Q4_K, 100), 0);
    assert_string_equal(quant_type_name(NJ_Q6_K), "Q6_K");
    assert_string_equal(quant_type_name(99), "?");
}

/* ------------------------------------------------------------------ round trip */

/* Weight-like rows: gaussian with a different scale per 32 values, a few
 * outliers, and an all-zero block. */
static void fill_weights(float *x, int n) {
    for (int i = 0; i < n; i += 32) {
        float scale = (float)exp2(-6.0 + 7.0 * rng_unif());
        for (int j = 0; j < 32; j++) x[i + j] = scale * rng_gauss();
        if (rng_unif() < 0.2) x[i + (int)(rng_unif() * 32)] *= 8;
    }
    for (int j = 0; j < 32 && j < n; j++) x[j] = 0;
}

/* Max allowed rms(error) / rms(x) for quantize->dequantize of fill_weights
 * rows, per type: about 1.3x the worst seen over 8 seeds (NJ_TEST_SEED). */
static double roundtrip_bound(int type) {
    switch (type) {
    case NJ_F32:  return 0;
    case NJ_F16:  return 4e-4;
    case NJ_BF16: return 3e-3;
    case NJ_Q8_0: case NJ_Q8_1: return 0.01;
    case NJ_Q8_K: return 0.025;   /* one scale per 256 values of varying size */
    case NJ_Q6_K: return 0.03;
    case NJ_Q5_1: case NJ_Q5_K: return 0.06;
    case NJ_Q5_0: return 0.09;
    case NJ_Q4_K: return 0.11;
    case NJ_Q4_1: return 0.13;
    case NJ_Q4_0: return 0.19;
    case NJ_Q3_K: return 0.23;
    case NJ_Q2_K: return 0.46;
    }
    return 0;
}

enum { RT_N = 256 * 32 };

static void test_roundtrip_all_types(void **st) {
    (void)st;
    static float x[RT_N], y[RT_N];
    static uint8_t q[RT_N * 4 + 64];
    for (int k = 0; k < NTYPES; k++) {
        int type = ALL_TYPES[k];
        const nj_type_traits *t = quant_traits_ref(type);
        rng_seed(seed_base() + (uint64_t)type);
        fill_weights(x, RT_N);
        memset(q, 0xa5, sizeof q);
        t->from_float(x, q, RT_N);
        t->to_float(q, y, RT_N);
        double e2 = 0, x2 = 0;
        for (int i = 0; i < RT_N; i++) {
            e2 += (double)(y[i] - x[i]) * (y[i] - x[i]);
            x2 += (double)x[i] * x[i];
        }
        double rel = sqrt(e2 / x2);
        if (getenv("NJ_TEST_VERBOSE")) print_message("%s: relative rms error %.4g\n", t->name, rel);
        if (rel > roundtrip_bound(type)) fail_msg("%s: relative rms error %g > %g", t->name, rel, roundtrip_bound(type));
        /* the all-zero first block stays exactly zero */
        for (int j = 0; j < 32; j++) assert_true(y[j] == 0.0f);
        /* nothing written past the row */
        assert_int_equal(q[quant_row_size(type, RT_N)], 0xa5);
        /* the file quantizer is equally accurate */
        quant_file_quantizer(type)(x, q, RT_N);
        t->to_float(q, y, RT_N);
        e2 = 0;
        for (int i = 0; i < RT_N; i++) e2 += (double)(y[i] - x[i]) * (y[i] - x[i]);
        assert_true(sqrt(e2 / x2) <= roundtrip_bound(type));
    }
}

/* Rows with a constant value, or a single non-zero, must survive. */
static void test_degenerate_rows(void **st) {
    (void)st;
    static float x[512], y[512];
    static uint8_t q[4096];
    for (int k = 0; k < NTYPES; k++) {
        const nj_type_traits *t = quant_traits_ref(ALL_TYPES[k]);
        for (int i = 0; i < 512; i++) x[i] = 0;
        t->from_float(x, q, 512);
        t->to_float(q, y, 512);
        for (int i = 0; i < 512; i++) assert_true(y[i] == 0.0f);
        x[77] = -3.0f;
        t->from_float(x, q, 512);
        t->to_float(q, y, 512);
        assert_true(fabsf(y[77] + 3.0f) <= 3.0f * 0.01f);
        for (int i = 0; i < 512; i++)
            if (i != 77 && fabsf(y[i]) > 0.05f) fail_msg("%s: zero at %d came back as %g", t->name, i, y[i]);
    }
}

/* The activation formats keep their side fields consistent. */
static void test_activation_side_fields(void **st) {
    (void)st;
    float x[512];
    rng_seed(7);
    for (int i = 0; i < 512; i++) x[i] = rng_gauss() * 5;
    block_q8_K k[2];
    quant_traits_ref(NJ_Q8_K)->from_float(x, k, 512);
    for (int b = 0; b < 2; b++)
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += k[b].qs[16 * g + l];
            assert_int_equal(k[b].bsums[g], s);
        }
    block_q8_1 o[16];
    quant_traits_ref(NJ_Q8_1)->from_float(x, o, 512);
    for (int b = 0; b < 16; b++) {
        int s = 0;
        for (int l = 0; l < 32; l++) s += o[b].qs[l];
        /* s = fp16(d * sum) with the unrounded f32 d = amax / 127 */
        float amax = 0;
        for (int l = 0; l < 32; l++) amax = fmaxf(amax, fabsf(x[32 * b + l]));
        assert_int_equal(o[b].s, nj_fp32_to_fp16(amax / 127.f * (float)s));
        assert_int_equal(o[b].d, nj_fp32_to_fp16(amax / 127.f));
    }
}

/* The two Q8_0 quantizers differ exactly where documented: with amax = 127
 * the multiplier is 1 and x.5 is a tie: the x86 activation path rounds half
 * to even, the model-file (ggml reference) path rounds half away from zero. */
static void test_q8_0_tie_rounding(void **st) {
    (void)st;
    float x[32] = {127.0f, 2.5f, -2.5f, 3.5f, -0.5f, 0.5f, 1.5f};
    block_q8_0 a, f;
    quant_traits_ref(NJ_Q8_0)->from_float(x, &a, 32);
    quant_file_quantizer(NJ_Q8_0)(x, &f, 32);
    const int8_t even[7] = {127, 2, -2, 4, 0, 0, 2}, away[7] = {127, 3, -3, 4, -1, 1, 2};
    for (int j = 0; j < 7; j++) {
        assert_int_equal(a.qs[j], even[j]);
        assert_int_equal(f.qs[j], away[j]);
    }
    assert_int_equal(a.d, f.d);
    /* Q8_K: x_max = -127 gives iscale = 1, ties to even */
    float z[256] = {-127.0f, 2.5f, -3.5f, 0.5f};
    block_q8_K k;
    quant_traits_ref(NJ_Q8_K)->from_float(z, &k, 256);
    assert_int_equal(k.qs[0], -127);
    assert_int_equal(k.qs[1], 2);
    assert_int_equal(k.qs[2], -4);
    assert_int_equal(k.qs[3], 0);
    assert_true(k.d == 1.0f);
}

/* ------------------------------------------------------------------ vec_dot */

static void test_vec_dot_matches_dequantized(void **st) {
    (void)st;
    enum { N = 256 * 8 };
    static float w[N], a[N], wd[N], ad[N];
    static uint8_t wq[N * 4], aq[N * 4];
    for (int k = 0; k < NTYPES; k++) {
        int type = ALL_TYPES[k];
        const nj_type_traits *t = quant_traits_ref(type);
        const nj_type_traits *vt = quant_traits_ref(t->vec_dot_type);
        for (int trial = 0; trial < 3; trial++) {
            rng_seed(77 + 131 * (uint64_t)type + (uint64_t)trial);
            fill_weights(w, N);
            for (int i = 0; i < N; i++) a[i] = rng_gauss() * (trial == 2 ? 40.0f : 1.0f) + (trial == 1 ? 0.5f : 0.0f);
            t->from_float(w, wq, N);
            vt->from_float(a, aq, N);
            t->to_float(wq, wd, N);
            vt->to_float(aq, ad, N);
            double ref = 0, mag = 0;
            for (int i = 0; i < N; i++) {
                ref += (double)wd[i] * ad[i];
                mag += fabs((double)wd[i] * ad[i]);
            }
            float s = -12345.f;
            t->vec_dot(N, &s, wq, aq);
            double tol = 2e-6 * mag + 1e-30;
            if (type == NJ_Q4_1 || type == NJ_Q5_1) {
                /* the min term uses s = fp16(d * sum q), not fp16(d) * sum q:
                 * allow fp16 rounding of s, and of d, per block */
                const block_q8_1 *yb = (const block_q8_1 *)aq;
                for (int b = 0; b < N / 32; b++) {
                    float m = nj_fp16_to_fp32(type == NJ_Q4_1 ? ((const block_q4_1 *)wq)[b].m
                                                              : ((const block_q5_1 *)wq)[b].m);
                    tol += fabs(m * nj_fp16_to_fp32(yb[b].s)) * 2e-3;
                }
            }
            if (fabs(s - ref) > tol) fail_msg("%s: vec_dot %.9g vs dequantized dot %.9g (tol %g)", t->name, s, ref, tol);
            /* and close to the unquantized dot */
            double exact = 0;
            for (int i = 0; i < N; i++) exact += (double)w[i] * a[i];
            double qtol = 4 * (roundtrip_bound(type) + 0.01) * mag + 1e-6;
            if (fabs(s - exact) > qtol) fail_msg("%s: vec_dot %.9g vs float dot %.9g", t->name, s, exact);
        }
    }
}

/* ------------------------------------------------------------------ golden */

enum { G_DEQUANT = 1, G_QUANT_FILE = 2, G_QUANT_CPU = 3, G_VEC_DOT = 4, G_INPUT = 6, G_QUANT_HASH = 7, G_KINDS = 8 };

/* The generator's counter-based PRNG and input rows (prng_floats in
 * tools/gen_quant_golden.py): only integer ops and exactly specified float
 * ops, so numpy and C produce the same bits. */
static uint64_t splitmix(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static void prng_floats(uint64_t seed, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = splitmix(seed, (uint64_t)i);
        int64_t u = (int64_t)((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48)) - 131070;
        float v = (float)u * 0x1p-17f;
        uint64_t r2 = splitmix(seed + 1, (uint64_t)i / 32);
        float scale = ldexpf(1.0f, (int)(r2 & 15) - 12);
        int f = (int)((r2 >> 4) & 63);
        uint64_t o = splitmix(seed + 2, (uint64_t)i);
        v = v * scale;
        if (f == 0) v = 0;
        if (f == 1) v = 0.75f * scale;
        if (f >= 2 && f <= 9) v = v + scale * 0.25f;
        if (f >= 10 && f <= 13 && (o & 3) != 0) v = 0;
        if (f > 1 && ((o >> 8) & 31) == 0) v = v * 8;
        x[i] = v;
    }
}
static uint64_t chunk_hash(const uint8_t *p, size_t n) {
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) h += p[i] * splitmix(0x5EED, i);
    return h;
}

static uint8_t *read_golden(size_t *len) {
    const char *cands[3] = {getenv("NJ_QUANT_GOLDEN"), "tests/data/quant_golden.bin", "../tests/data/quant_golden.bin"};
    for (int i = 0; i < 3; i++) {
        if (!cands[i]) continue;
        FILE *f = fopen(cands[i], "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *p = malloc((size_t)n);
        assert_non_null(p);
        assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        *len = (size_t)n;
        return p;
    }
    return NULL;
}

static int type_index(int type) {
    for (int k = 0; k < NTYPES; k++)
        if (ALL_TYPES[k] == type) return k;
    return -1;
}

static void test_golden(void **st) {
    (void)st;
    size_t len = 0;
    uint8_t *buf = read_golden(&len);
    if (!buf) fail_msg("tests/data/quant_golden.bin not found (run from the repository root or set NJ_QUANT_GOLDEN)");
    assert_true(len >= 12);
    assert_memory_equal(buf, "NJQG", 4);
    uint32_t hdr[2];
    memcpy(hdr, buf + 4, 8);
    assert_int_equal(hdr[0], 2);
    int seen[G_KINDS][NTYPES];
    memset(seen, 0, sizeof seen);
    int bad = 0;
#define GOLDEN_FAIL(...) do { if (bad++ < 20) print_error(__VA_ARGS__); } while (0)
    size_t off = 12;
    static float out[8192], shared[8192];
    static uint8_t qb[65536];
    uint32_t shared_n = 0;
    for (uint32_t r = 0; r < hdr[1]; r++) {
        uint32_t h[5];
        assert_true(off + 20 <= len);
        memcpy(h, buf + off, 20);
        off += 20;
        uint32_t kind = h[0], n = h[2], la = h[3], lb = h[4];
        int type = (int)h[1];
        assert_true(off + la + lb <= len);
        const uint8_t *a = buf + off, *b = buf + off + la;
        off += la + lb;
        const nj_type_traits *t = quant_traits_ref(type);
        assert_non_null(t);
        assert_true(n <= 8192 || kind == G_QUANT_HASH);
        size_t rs = quant_row_size(type, n);
        switch (kind) {
        case G_DEQUANT:
            assert_int_equal(la, rs);
            assert_int_equal(lb, 4 * n);
            t->to_float(a, out, n);
            for (uint32_t i = 0; i < n; i++) {
                float e;
                memcpy(&e, b + 4 * i, 4);
                if (fbits(out[i]) != fbits(e) && !(isnan(out[i]) && isnan(e))) {
                    GOLDEN_FAIL("%s dequant record %u elem %u: %.9g (0x%08x) != %.9g (0x%08x)\n", t->name, r, i,
                                out[i], fbits(out[i]), e, fbits(e));
                    break;
                }
            }
            break;
        case G_INPUT:
            assert_int_equal(la, 4 * n);
            memcpy(shared, a, la);
            shared_n = n;
            break;
        case G_QUANT_FILE:
        case G_QUANT_CPU: {
            static float in[8192];
            if (la == 0) {        /* uses the last INPUT row */
                assert_int_equal(n, shared_n);
                memcpy(in, shared, 4 * (size_t)n);
            } else {
                assert_int_equal(la, 4 * n);
                memcpy(in, a, la);
            }
            assert_int_equal(lb, rs);
            nj_from_float_fn fn = kind == G_QUANT_FILE ? quant_file_quantizer(type) : t->from_float;
            memset(qb, 0, rs);
            fn(in, qb, n);
            for (size_t i = 0; i < rs; i++)
                if (qb[i] != b[i]) {
                    GOLDEN_FAIL("%s %s quant record %u: byte %zu (block %zu) is 0x%02x, want 0x%02x\n", t->name,
                                kind == G_QUANT_FILE ? "file" : "cpu", r, i, i / t->size, qb[i], b[i]);
                    break;
                }
            break;
        }
        case G_QUANT_HASH: {
            uint64_t seed;
            uint32_t which, chunk;
            assert_int_equal(la, 16);
            memcpy(&seed, a, 8);
            memcpy(&which, a + 8, 4);
            memcpy(&chunk, a + 12, 4);
            assert_true(chunk > 0 && n % chunk == 0 && chunk % t->blck == 0);
            assert_int_equal(lb, 8 * (n / chunk));
            float *in = malloc(sizeof(float) * n);
            size_t cb = quant_row_size(type, chunk);
            uint8_t *qq = malloc(cb);
            assert_true(in && qq);
            prng_floats(seed, in, n);
            if (which == G_QUANT_CPU)
                for (uint32_t i = 0; i < n; i++) in[i] *= 16;
            nj_from_float_fn fn = which == G_QUANT_FILE ? quant_file_quantizer(type) : t->from_float;
            int nbad = 0;
            for (uint32_t c = 0; c < n / chunk; c++) {
                uint64_t want;
                memcpy(&want, b + 8 * c, 8);
                fn(in + (size_t)c * chunk, qq, chunk);
                if (chunk_hash(qq, cb) != want && nbad++ < 3)
                    GOLDEN_FAIL("%s %s quant hash record %u: chunk %u (elements %u..) differs\n", t->name,
                                which == G_QUANT_FILE ? "file" : "cpu", r, c, c * chunk);
            }
            if (nbad) GOLDEN_FAIL("%s: %d of %u hashed chunks differ\n", t->name, nbad, n / chunk);
            free(in);
            free(qq);
            break;
        }
        case G_VEC_DOT: {
            size_t ra = quant_row_size(t->vec_dot_type, n);
            assert_int_equal(la, rs + ra);
            assert_int_equal(lb, 8);
            float want[2], s = -1;
            memcpy(want, b, 8);
            t->vec_dot((int)n, &s, a, a + rs);
            /* Not bit-exact even against ggml's generic C (want[0]): the peer
             * build compiles it with FMA contraction (GCC's default outside
             * ISO mode); the SIMD kernel (want[1]) sums in yet another order.
             * Bound the difference by the magnitude of the terms. */
            static float wd[8192], ad[8192];
            t->to_float(a, wd, n);
            quant_traits_ref(t->vec_dot_type)->to_float(a + rs, ad, n);
            double mag = 0;
            for (uint32_t i = 0; i < n; i++) mag += fabs((double)wd[i] * ad[i]);
            if (!isnan(want[0]) && fabs((double)s - want[0]) > 1e-6 * mag)
                GOLDEN_FAIL("%s vec_dot record %u: %.9g vs llama.cpp generic %.9g\n", t->name, r, s, want[0]);
            if (fabs((double)s - want[1]) > 1e-5 * mag)
                GOLDEN_FAIL("%s vec_dot record %u: %.9g vs llama.cpp SIMD %.9g\n", t->name, r, s, want[1]);
            break;
        }
        default:
            fail_msg("unknown golden record kind %u", kind);
        }
        if (kind < G_KINDS && type_index(type) >= 0) seen[kind][type_index(type)]++;
    }
    assert_int_equal(off, len);
    free(buf);
    if (bad) fail_msg("%d golden mismatches", bad);
    /* coverage: the file must exercise every type (a truncated or
     * regenerated-without-llama.cpp file fails here rather than passing
     * silently) */
    for (int k = 0; k < NTYPES; k++) {
        int type = ALL_TYPES[k];
        bool deq = type != NJ_F32 && type != NJ_Q8_1 && type != NJ_Q8_K;
        if (deq && !seen[G_DEQUANT][k]) fail_msg("no dequant golden for %s", quant_type_name(type));
        if (type != NJ_F32 && type != NJ_Q8_1 && type != NJ_Q8_K && !seen[G_QUANT_FILE][k])
            fail_msg("no file-quant golden for %s", quant_type_name(type));
        bool act = type == NJ_Q8_0 || type == NJ_Q8_1 || type == NJ_Q8_K || type == NJ_F16 || type == NJ_BF16;
        if (act && !seen[G_QUANT_CPU][k]) fail_msg("no cpu-quant golden for %s", quant_type_name(type));
        bool dot = !(type == NJ_Q8_1 || type == NJ_Q8_K);
        if (dot && !seen[G_VEC_DOT][k]) fail_msg("no vec_dot golden for %s", quant_type_name(type));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_roundtrip_exhaustive),
        cmocka_unit_test(test_fp16_rounding_exhaustive),
        cmocka_unit_test(test_fp16_special),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_traits_table),
        cmocka_unit_test(test_roundtrip_all_types),
        cmocka_unit_test(test_degenerate_rows),
        cmocka_unit_test(test_activation_side_fields),
        cmocka_unit_test(test_q8_0_tie_rounding),
        cmocka_unit_test(test_vec_dot_matches_dequantized),
        cmocka_unit_test(test_golden),
    };
    return cmocka_run_group_tests_name("quant", tests, NULL, NULL);
}
