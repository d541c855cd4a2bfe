/* Box-Muller uniforms from NumPy's PCG64, bit for bit (docs/DECISIONS.md E11, E15).
 *
 * shamisa_core.distortions.sampling.box_muller draws 2*pairs float32 uniforms the way
 * rng.random(2*pairs, dtype=float32) does for a PCG64 generator without a buffered half
 * word: 32-bit halves of 64-bit words, low half first, each shifted right by 8 (k, 24 bits).
 * The first `pairs` halves become radius inputs 1 - k/2**24 = (2**24 - k) * 2**-24 (exact in
 * float32), the next `pairs` become angles float32(k) * float32(float32(2 pi) / 2**24) (one
 * rounded float32 product). This file does both steps in one pass.
 *
 * NumPy's PCG64 (pcg64.h): a 128-bit LCG, state = state * MULT + inc, then the XSL-RR
 * output of the new state: rotr64(hi ^ lo, hi >> 58). Four chains, each stepping four
 * states at a time (multiplier MULT^4, increment inc * (MULT^3 + MULT^2 + MULT + 1)), make
 * the words in their original order while the 128-bit multiplies overlap.
 *
 * Compiled with -ffp-contract=off and SSE float arithmetic (x86-64, FLT_EVAL_METHOD 0):
 * every float operation below is one rounded float32 operation, as NumPy's.
 */

#include <stdint.h>
#include <string.h>

#define SHAMISA_API __attribute__((visibility("default")))

typedef __uint128_t u128;

#define PCG_MULT_HI 0x2360ed051fc65da4ULL
#define PCG_MULT_LO 0x4385df649fccf645ULL

static inline uint64_t xsl_rr(u128 s)
{
    uint64_t hi = (uint64_t)(s >> 64), lo = (uint64_t)s;
    uint64_t x = hi ^ lo;
    unsigned rot = (unsigned)(hi >> 58);
    return (x >> rot) | (x << ((64u - rot) & 63u));
}

/* Four lanes at a time with GCC/Clang vector extensions (SSE2 on x86-64): the same float32
 * conversions and products as the scalar loops, which do the remainders. */
typedef uint32_t v4u __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef float v4f __attribute__((vector_size(16)));

/* out[p] = float32(2**24 - (buf[p] >> 8)) * 2**-24 for p in [0, n): exact. */
static void radius_inputs(const uint32_t *buf, float *out, uint64_t n)
{
    const float inv_2_24 = 1.0f / 16777216.0f; /* exact */
    const v4i top = {16777216, 16777216, 16777216, 16777216};
    const v4f scale = {inv_2_24, inv_2_24, inv_2_24, inv_2_24};
    uint64_t p = 0;
    for (; p + 4 <= n; p += 4) {
        v4u w;
        memcpy(&w, buf + p, sizeof w);
        v4i k = (v4i)(w >> 8); /* below 2**24: the same value as int32 */
        v4f f = __builtin_convertvector(top - k, v4f) * scale;
        memcpy(out + p, &f, sizeof f);
    }
    for (; p < n; p++)
        out[p] = (float)(int32_t)(16777216u - (buf[p] >> 8)) * inv_2_24;
}

/* out[p] = float32(buf[p] >> 8) * angle_scale for p in [0, n): one rounded product each. */
static void angles(const uint32_t *buf, float *out, uint64_t n, float angle_scale)
{
    const v4f scale = {angle_scale, angle_scale, angle_scale, angle_scale};
    uint64_t p = 0;
    for (; p + 4 <= n; p += 4) {
        v4u w;
        memcpy(&w, buf + p, sizeof w);
        v4i k = (v4i)(w >> 8);
        v4f f = __builtin_convertvector(k, v4f) * scale;
        memcpy(out + p, &f, sizeof f);
    }
    for (; p < n; p++)
        out[p] = (float)(int32_t)(buf[p] >> 8) * angle_scale;
}

/* Converts the 32-bit halves buf[0:p1-p0), positions p0..p1 of the 2*pairs stream (radius
 * inputs below `pairs`, angles from it), into out[p0:p1). */
static void convert(const uint32_t *buf, float *out, uint64_t p0, uint64_t p1, uint64_t pairs,
                    float angle_scale)
{
    uint64_t mid = p1 < pairs ? p1 : (p0 > pairs ? p0 : pairs);
    radius_inputs(buf, out + p0, mid - p0);
    angles(buf + (mid - p0), out + mid, p1 - mid, angle_scale);
}

#define BLOCK 512 /* 64-bit words per block: 4 KiB, converted while still in L1 */

/* Writes 2*pairs float32 values: out[0:pairs] radius inputs, out[pairs:2*pairs] angles.
 * state: {state_hi, state_lo, inc_hi, inc_lo}; on return state_hi/state_lo hold the state
 * after `pairs` steps (random_raw(pairs) advances it so). angle_scale is
 * float32(float32(2 pi) / float32(2**24)), passed in so the constant is NumPy's rounding. */
SHAMISA_API void shamisa_pcg64_box_muller_uniforms(uint64_t *state, uint64_t pairs, float *out,
                                                   float angle_scale)
{
    const u128 mult = ((u128)PCG_MULT_HI << 64) | PCG_MULT_LO;
    const u128 inc = ((u128)state[2] << 64) | state[3];
    u128 s = ((u128)state[0] << 64) | state[1]; /* the state after i steps */
    u128 mult4 = 1, inc4 = 0;                  /* four steps at once */
    for (int j = 0; j < 4; j++) {
        mult4 *= mult;
        inc4 = inc4 * mult + inc;
    }
    uint32_t halves[2 * BLOCK]; /* one block's words as 32-bit halves, low half first */
    uint64_t i = 0;
    while (i < pairs) {
        uint64_t end = pairs - i > BLOCK ? i + BLOCK : pairs;
        uint64_t start = i;
        if (end - i >= 4) {
            u128 c0 = s * mult + inc, c1 = c0 * mult + inc, c2 = c1 * mult + inc,
                 c3 = c2 * mult + inc;
            for (; i + 4 <= end; i += 4) {
                uint64_t w[4] = {xsl_rr(c0), xsl_rr(c1), xsl_rr(c2), xsl_rr(c3)};
                memcpy(halves + 2 * (i - start), w, sizeof w); /* little-endian: low half first */
                s = c3;
                c0 = c0 * mult4 + inc4;
                c1 = c1 * mult4 + inc4;
                c2 = c2 * mult4 + inc4;
                c3 = c3 * mult4 + inc4;
            }
        }
        for (; i < end; i++) {
            s = s * mult + inc;
            uint64_t w = xsl_rr(s);
            memcpy(halves + 2 * (i - start), &w, sizeof w);
        }
        convert(halves, out, 2 * start, 2 * end, pairs, angle_scale);
    }
    state[0] = (uint64_t)(s >> 64);
    state[1] = (uint64_t)s;
}
