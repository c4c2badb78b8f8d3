/* The reference act_quantize for float32 input, exactly (see act_quantize.h and
 * qcheck/quantizers/activations.py).
 *
 * Why double arithmetic gives the exact decision (SPEC ACT-2):
 *  - x * 127 is exact in double: x has a 24-bit significand and 127 a 7-bit one (31 <= 53 bits),
 *    and |x| * 127 < 2^128 * 2^7 stays far below double's maximum.
 *  - the quotient q = (x * 127) / a is then rounded once, correctly: |q_double - q| <= 2^-53 |q|
 *    <= 2^-46, since |q| <= 127 (|x| <= a).
 *  - an exact tie k + 1/2 (|k| < 128) is representable in double, so a tie stays a tie.
 *  - a non-tie is at least 2^-34 from every half-integer: only |q| >= 1/4 can be near one, which
 *    needs |x| >= a / 508, so x * 127 and (k + 1/2) * a are both integer multiples of
 *    g = min(ulp(x), ulp(a) / 2) >= ulp(a) * 2^-10 > a * 2^-34; a nonzero difference is >= g,
 *    i.e. |q - (k + 1/2)| >= 2^-34 (a >= fl32(1e-5) is a normal float, so ulps are relative).
 *  Since 2^-46 < 2^-34, rounding q_double to the nearest integer, ties to even, gives the code of
 *  the exact quotient.  torch's reference performs the very same double operations.
 *  - the scale fl32(a / 127): the reference divides in double and rounds to float32; done the same
 *    way here, so the scale is bit-identical (it is a double rounding of a / 127, as in the
 *    reference, not necessarily the correctly rounded float32 quotient). */
#include "act_quantize.h"

#include <math.h>

/* eps is applied in the scale dtype (SPEC SCALE-3): the reference rounds the double 1e-5 to float32. */
#define ACT_EPS ((float)1e-5)
#define ACT_QP 127.0
#define ACT_LOW (-128.0)

static double round_code(double q) {
#ifdef QCHECK_BROKEN_ROUNDING
    /* Deliberately broken: C roundf rounds ties away from zero (2.5 -> 3, -0.5 -> -1), the ggml
     * habit; the default conventions say half to even. */
    return (double)roundf((float)q);
#else
    /* nearbyint rounds in the current rounding mode, FE_TONEAREST by default: ties to even. */
    return nearbyint(q);
#endif
}

void act_quantize_f32(const float *x, size_t rows, size_t k, int8_t *codes, float *scales) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * k;
        float absmax = 0.0f;
        for (size_t i = 0; i < k; i++) {
            float magnitude = fabsf(row[i]);
            if (magnitude > absmax) {
                absmax = magnitude;
            }
        }
        const float a = absmax > ACT_EPS ? absmax : ACT_EPS; /* FAQ: .clamp(min=1e-5) */
        for (size_t i = 0; i < k; i++) {
            double code = round_code((double)row[i] * ACT_QP / (double)a);
            if (code < ACT_LOW) {
                code = ACT_LOW;
            }
            if (code > ACT_QP) {
                code = ACT_QP;
            }
            codes[r * k + i] = (int8_t)code;
        }
        scales[r] = (float)((double)a / ACT_QP);
    }
}
