/* kernels.c - the choice of kernel table: CPU feature detection (CPUID and
 * XGETBV on x86-64, hardware capabilities on AArch64). */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>
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

/* AVX512F + BW + VL + VNNI, and the OS saves the opmask and ZMM state */
static bool x86_has_avx512vnni(void) {
    unsigned a, b, c, d;
    if (!x86_has_avx2() || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!((b & (1u << 16)) && (b & (1u << 30)) && (b & (1u << 31)) && (c & (1u << 11)))) return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xe6) == 0xe6;
}

/* CPUID leaf 0's vendor string is "GenuineIntel" (EBX, EDX, ECX) */
static bool x86_is_intel(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
    char v[13];
    memcpy(v, &b, 4);
    memcpy(v + 4, &d, 4);
    memcpy(v + 8, &c, 4);
    v[12] = 0;
    return strcmp(v, "GenuineIntel") == 0;
}
#endif
#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#endif

int g8_kernels_all(const g8_kernels **out, int max) {
    int n = 0;
    if (n < max) out[n++] = g8_kernels_scalar();
#if defined(__x86_64__)
    if (n < max && x86_has_avx2()) out[n++] = &g8_kernels_avx2;
    if (n < max && x86_has_avxvnni()) out[n++] = &g8_kernels_avxvnni;
    /* 512-bit: preferred, the one-token GEMVs prefetching on Intel and not elsewhere (x86_avx512.c);
     * both tables run on any CPU with AVX512-VNNI, the preferred one last */
    if (x86_has_avx512vnni()) {
        const bool intel = x86_is_intel();
        if (n < max) out[n++] = intel ? &g8_kernels_avx512vnni : &g8_kernels_avx512vnni_pf;
        if (n < max) out[n++] = intel ? &g8_kernels_avx512vnni_pf : &g8_kernels_avx512vnni;
    }
#endif
#if defined(__aarch64__)
    const bool dotprod = getauxval(AT_HWCAP) & HWCAP_ASIMDDP;
    if (n < max && dotprod) out[n++] = &g8_kernels_neon;
    if (n < max && dotprod && (getauxval(AT_HWCAP2) & HWCAP2_I8MM)) out[n++] = &g8_kernels_neon_i8mm;
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
