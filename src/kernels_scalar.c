/* kernels_scalar.c - the portable reference kernels, and the kernel table choice. */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <cpuid.h>

/* AVX2 + FMA + F16C, and the OS saves the YMM registers */
static bool x86_has_avx2(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
    if (!(fma && osxsave && avx && f16c)) return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return b & (1u << 5);
}

/* AVX-VNNI: CPUID.(7,1).EAX[4] */
static bool x86_has_avxvnni(void) {
    unsigned a, b, c, d;
    return x86_has_avx2() && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4));
}

/* AVX512F + VL + VNNI, and the OS saves the opmask and ZMM state */
static bool x86_has_avx512vnni(void) {
    unsigned a, b, c, d;
    if (!x86_has_avx2() || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!((b & (1u << 16)) && (b & (1u << 31)) && (c & (1u << 11)))) return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xe6) == 0xe6;
}
#endif
#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif
#include <string.h>

static float dot_f32(int n, const float *w, const float *x) {
    float s = 0;
    for (int i = 0; i < n; i++) s += w[i] * x[i];
    return s;
}

static float dot_f16(int n, const uint16_t *w, const float *x) {
    float s = 0;
    for (int i = 0; i < n; i++) s += g8_f16_to_f32(w[i]) * x[i];
    return s;
}

static float dot_bf16(int n, const uint16_t *w, const float *x) {
    float s = 0;
    for (int i = 0; i < n; i++) s += g8_bf16_to_f32(w[i]) * x[i];
    return s;
}

static float dot_q8_0(int nb, const block_q8_0 *w, const block_q8_0 *x) {
    float s = 0;
    for (int b = 0; b < nb; b++) {
        int32_t acc = 0;
        for (int j = 0; j < QK8_0; j++) acc += (int32_t)w[b].qs[j] * x[b].qs[j];
        s += (float)acc * (g8_f16_to_f32(w[b].d) * g8_f16_to_f32(x[b].d));
    }
    return s;
}

static void tile_q8_0(int nb, const block_q8_0 *w, size_t ws, const block_q8_0 *x, size_t xs, float *y, size_t ldy) {
    for (int t = 0; t < 4; t++)
        for (int r = 0; r < 4; r++) y[t * ldy + r] = dot_q8_0(nb, w + r * ws, x + t * xs);
}

static void quantize_q8_0(const float *x, block_q8_0 *y, int n) { g8_quantize_row_q8_0_ref(x, y, n); }

static void axpy(int n, float a, const float *x, float *y) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

void g8_softcap_scalar(int n, float *x, float scale, float cap) {
    if (cap == 0) {
        for (int i = 0; i < n; i++) x[i] *= scale;
        return;
    }
    for (int i = 0; i < n; i++) x[i] = tanhf(x[i] * scale / cap) * cap;
}

float g8_exp_sum_scalar(int n, float *x, float m) {
    float sum = 0;
    for (int i = 0; i < n; i++) sum += (x[i] = expf(x[i] - m));
    return sum;
}

void g8_geglu_scalar(int n, float *g, const float *u) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int i = 0; i < n; i++) {
        const float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x))) * u[i];
    }
}

void g8_qk_f16_scalar(int n, const uint16_t *k, int hd, const float *q, int group, float *s, size_t ls) {
    for (int j = 0; j < n; j++)
        for (int h = 0; h < group; h++) s[h * ls + (size_t)j] = dot_f16(hd, k + (size_t)j * hd, q + (size_t)h * hd);
}

void g8_wsum_f16_scalar(int n, const float *w, size_t lw, const uint16_t *v, int hd, int group, float *out) {
    for (int j = 0; j < n; j++)
        for (int h = 0; h < group; h++) {
            const float wj = w[h * lw + (size_t)j];
            for (int i = 0; i < hd; i++) out[(size_t)h * hd + i] += wj * g8_f16_to_f32(v[(size_t)j * hd + i]);
        }
}

void g8_qk_q8_0_scalar(int n, const block_q8_0 *k, int nb, const block_q8_0 *q, int group, float *s, size_t ls) {
    for (int j = 0; j < n; j++)
        for (int h = 0; h < group; h++) s[h * ls + (size_t)j] = dot_q8_0(nb, k + (size_t)j * nb, q + (size_t)h * nb);
}

void g8_wsum_q8_0_scalar(int n, const float *w, size_t lw, const block_q8_0 *v, int hd, int group, float *out) {
    const int nb = hd / QK8_0;
    for (int j = 0; j < n; j++)
        for (int h = 0; h < group; h++)
            for (int b = 0; b < nb; b++) {
                const block_q8_0 *blk = v + (size_t)j * nb + b;
                const float s = w[h * lw + (size_t)j] * g8_f16_to_f32(blk->d);
                for (int i = 0; i < QK8_0; i++) out[(size_t)h * hd + b * QK8_0 + i] += s * (float)blk->qs[i];
            }
}

static const g8_kernels scalar = {
    "scalar", dot_f32, dot_f16, dot_bf16, dot_q8_0, tile_q8_0, quantize_q8_0, axpy,
    g8_softcap_scalar, g8_exp_sum_scalar, g8_geglu_scalar, g8_qk_f16_scalar, g8_wsum_f16_scalar,
    g8_qk_q8_0_scalar, g8_wsum_q8_0_scalar,
};

const g8_kernels *g8_kernels_scalar(void) { return &scalar; }

int g8_kernels_all(const g8_kernels **out, int max) {
    int n = 0;
    if (n < max) out[n++] = &scalar;
#if defined(__x86_64__)
    if (n < max && x86_has_avx2()) out[n++] = &g8_kernels_avx2;
    if (n < max && x86_has_avx512vnni()) out[n++] = &g8_kernels_avx512vnni;
    if (n < max && x86_has_avxvnni()) out[n++] = &g8_kernels_avxvnni; /* VEX: the shorter encoding, preferred */
#endif
#if defined(__aarch64__)
    if (n < max && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP)) out[n++] = &g8_kernels_neon;
    if (n < max && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) && (getauxval(AT_HWCAP2) & HWCAP2_I8MM))
        out[n++] = &g8_kernels_neon_i8mm;
#endif
    return n;
}

const g8_kernels *g8_kernels_best(void) {
    const char *force = getenv("GEMMA8_KERNELS");
    const g8_kernels *all[8];
    int n = g8_kernels_all(all, 8);
    if (force)
        for (int i = 0; i < n; i++)
            if (strcmp(all[i]->name, force) == 0) return all[i];
    return all[n - 1];
}
