/* BitNet b1.58 kernels in plain C99, written to pass qcheck's default conventions
 * (docs/backend-contract.md, SPEC.md B158-*, ACT-*, BL-*): the FAQ's absmean ternary weights,
 * per-token absmax int8 activations and the BitLinear product with an exact integer dot product.
 *
 * Build (the Python adapter does this at first use, see ../../README.md):
 *     cc -std=c11 -O2 -Wall -Wextra -ffp-contract=off -shared -fPIC bitnet_kernels.c -o libbitnet_kernels.so -lm
 * -ffp-contract=off: the float epilogue is specified as separate IEEE multiplies and an add; a
 * compiler that fuses them into an FMA (GCC does by default where FMA exists, e.g. aarch64) gives
 * other last bits than the float32 reference epilogue.
 * -DQCHECK_EXAMPLE_INT16_ACCUMULATOR builds the deliberately broken variant (int16 accumulator).
 *
 * Memory layout: every array is dense and row-major (C order); a "row" is the last dimension.
 * Scales are dequantization scales: value ~ code * scale.  Every function only reads its inputs.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QCHECK_OK 0
#define QCHECK_ERR_TOO_MANY 1 /* more elements than the exact mean below supports (2^32 - 1) */
#define QCHECK_ERR_NO_MEMORY 2

/* eps is applied in the scale dtype (SPEC SCALE-3, CONV-2 clamp): the FAQ's .clamp(min=1e-5). */
#define EPS_F32 ((float)1e-5)
#define EPS_F64 1e-5
#define QP 127 /* 2^(8-1) - 1: int8 activations */

/* ------------------------------------------------------------------ exact sums (b1.58 gamma) */

/* gamma = max(fl_s(fl64(mean|W|)), eps) needs the mean of |W| rounded ONCE to double (SPEC
 * SCALE-1): a float sum is neither exact (16 copies of 0.3 do not average to 0.3) nor safe (a
 * float32 sum of weights near 3.4e38 overflows, a double sum near 1.8e308 too).
 *
 * The exact sum is kept in a superaccumulator: a fixed-point integer in units of 2^-1074 (the
 * smallest double subnormal), wide enough for any double magnitude (< 2^1024) summed 2^32 times:
 * 2130 bits, stored as 32-bit digits in 64-bit limbs.  A double |w| is m * 2^(p - 1074) with an
 * integer m < 2^53 and p >= 0, so adding it adds at most 2^33 to each of three limbs; limbs have
 * room for 2^31 such additions, and carries are propagated every 2^30 elements.  Every float32
 * (and float16/bfloat16) value is a double exactly, so the same accumulator serves all dtypes. */
#define SUPER_LIMBS 68 /* 68 * 32 = 2176 bits >= 2099 + 32 */
#define DIGIT_MASK 0xFFFFFFFFu
#define CARRY_EVERY (1u << 30)

typedef struct {
    uint64_t limb[SUPER_LIMBS]; /* limb i holds digit i (bits 32i..32i+31) plus pending carries */
} superacc;

/* v >= 0 finite  ->  v == *m * 2^(*p - 1074), from the IEEE bits (no frexp/ldexp rounding). */
static void decompose(double v, uint64_t *m, int *p) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    const int biased = (int)((bits >> 52) & 0x7FF);
    const uint64_t fraction = bits & ((UINT64_C(1) << 52) - 1);
    if (biased == 0) { /* zero or subnormal: fraction * 2^-1074 */
        *m = fraction;
        *p = 0;
    } else { /* normal: (2^52 + fraction) * 2^(biased - 1075) */
        *m = fraction | (UINT64_C(1) << 52);
        *p = biased - 1;
    }
}

static void superacc_add(superacc *acc, double magnitude) {
    uint64_t m;
    int p;
    decompose(magnitude, &m, &p);
    const int i = p / 32, shift = p % 32;
    const uint64_t low = (m & DIGIT_MASK) << shift; /* < 2^64 */
    const uint64_t high = (m >> 32) << shift;       /* < 2^53 */
    acc->limb[i] += low & DIGIT_MASK;
    acc->limb[i + 1] += (low >> 32) + (high & DIGIT_MASK);
    acc->limb[i + 2] += high >> 32;
}

static void superacc_carry(superacc *acc) {
    uint64_t carry = 0;
    for (int i = 0; i < SUPER_LIMBS; i++) {
        const uint64_t v = acc->limb[i] + carry;
        acc->limb[i] = v & DIGIT_MASK;
        carry = v >> 32;
    }
}

/* The exact quotient (sum / n) rounded to the nearest double, ties to even: long division by n
 * (n < 2^32, so remainder * 2^32 + digit fits in 64 bits), then rounding on the top 53 bits with
 * the next bit and a sticky bit (the dropped bits and the remainder).  The result is <= the
 * largest |w|, so it is finite. */
static double superacc_mean(superacc *acc, uint32_t n) {
    superacc_carry(acc);
    uint64_t remainder = 0;
    for (int i = SUPER_LIMBS - 1; i >= 0; i--) {
        const uint64_t cur = (remainder << 32) | acc->limb[i];
        acc->limb[i] = cur / n;
        remainder = cur % n;
    }
    int top = SUPER_LIMBS - 1; /* the quotient's highest nonzero digit */
    while (top > 0 && acc->limb[top] == 0) {
        top--;
    }
    int bits = 32 * top; /* the quotient's bit length */
    for (uint64_t d = acc->limb[top]; d != 0; d >>= 1) {
        bits++;
    }
    if (bits <= 53) { /* at most 53 bits in units of 2^-1074: round the fraction remainder / n */
        uint64_t q = acc->limb[0] | (top >= 1 ? acc->limb[1] << 32 : 0);
        const uint64_t twice = 2 * remainder; /* compare remainder / n with 1/2 */
        if (twice > n || (twice == n && (q & 1))) {
            q++;
        }
        return ldexp((double)q, -1074); /* q <= 2^53: exact */
    }
    const int drop = bits - 53; /* bits below the kept significand */
    uint64_t significand = 0;
    for (int b = bits - 1; b >= drop; b--) {
        significand = (significand << 1) | ((acc->limb[b / 32] >> (b % 32)) & 1);
    }
    const int round_bit = (int)((acc->limb[(drop - 1) / 32] >> ((drop - 1) % 32)) & 1);
    int sticky = remainder != 0;
    for (int b = 0; b < drop - 1 && !sticky; b++) {
        sticky = (int)((acc->limb[b / 32] >> (b % 32)) & 1);
    }
    if (round_bit && (sticky || (significand & 1))) {
        significand++; /* may become 2^53: still exact in a double */
    }
    return ldexp((double)significand, drop - 1074);
}

/* fl64(mean |w|) of n doubles; QCHECK_ERR_TOO_MANY past the 2^32 - 1 elements the division handles. */
static int exact_absmean(const double *w, const float *w32, size_t n, double *mean) {
    if (n == 0 || n > UINT32_MAX) {
        return QCHECK_ERR_TOO_MANY;
    }
    superacc *acc = calloc(1, sizeof *acc);
    if (acc == NULL) {
        return QCHECK_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        superacc_add(acc, w != NULL ? fabs(w[i]) : fabs((double)w32[i]));
        if ((i + 1) % CARRY_EVERY == 0) {
            superacc_carry(acc);
        }
    }
    *mean = superacc_mean(acc, (uint32_t)n);
    free(acc);
    return QCHECK_OK;
}

/* ------------------------------------------------------------------ b1.58 weights (B158-*) */

/* RoundClip(w / gamma, -1, 1), rounding half to even, decided exactly without dividing:
 * |code| = 1 iff |w / gamma| > 1/2, i.e. 2|w| > gamma (2|w| is exact in double; if it overflows
 * to inf the answer is still right).  w / gamma == 1/2 exactly is a tie: half-even gives 0.
 * 1.5 and 2.5 clip to 1, so no other boundary exists. */
static int8_t ternary_code(double w, double gamma) {
    if (2.0 * fabs(w) > gamma) {
        return w > 0 ? 1 : -1;
    }
    return 0;
}

int b158_quantize_f32(const float *w, size_t n, int8_t *codes, float *gamma) {
    double mean;
    const int status = exact_absmean(NULL, w, n, &mean);
    if (status != QCHECK_OK) {
        return status;
    }
    const float stat = (float)mean; /* the float64 mean rounded to the scale dtype (SPEC SCALE-1) */
    const float g = stat > EPS_F32 ? stat : EPS_F32;
    for (size_t i = 0; i < n; i++) {
        codes[i] = ternary_code((double)w[i], (double)g);
    }
    *gamma = g;
    return QCHECK_OK;
}

int b158_quantize_f64(const double *w, size_t n, int8_t *codes, double *gamma) {
    double mean;
    const int status = exact_absmean(w, NULL, n, &mean);
    if (status != QCHECK_OK) {
        return status;
    }
    const double g = mean > EPS_F64 ? mean : EPS_F64;
    for (size_t i = 0; i < n; i++) {
        codes[i] = ternary_code(w[i], g);
    }
    *gamma = g;
    return QCHECK_OK;
}

/* ------------------------------------------------------------------ activations (ACT-*) */

static int8_t clamp_code(double code) {
    if (code < -128.0) {
        return -128;
    }
    if (code > 127.0) {
        return 127;
    }
    return (int8_t)code;
}

/* float32 input: q = (x * 127) / a in double decides exactly.  x * 127 is exact (24 + 7 bits);
 * the quotient is correctly rounded, |q_double - q| <= 2^-53 * 127 < 2^-46; an exact tie k + 1/2
 * is a double and stays a tie; a non-tie is at least 2^-34 from every half-integer (x * 127 and
 * (k + 1/2) * a are multiples of min(ulp(x), ulp(a)/2) >= a * 2^-34 since a >= fl32(1e-5) is
 * normal).  So nearbyint (FE_TONEAREST: ties to even) gives the code of the exact quotient. */
static void act_row_f32(const float *x, size_t k, int8_t *codes, float *scale) {
    float absmax = 0.0f;
    for (size_t i = 0; i < k; i++) {
        const float magnitude = fabsf(x[i]);
        absmax = magnitude > absmax ? magnitude : absmax;
    }
    const float a = absmax > EPS_F32 ? absmax : EPS_F32; /* max(absmax, eps) in float32 */
    for (size_t i = 0; i < k; i++) {
        codes[i] = clamp_code(nearbyint((double)x[i] * QP / (double)a));
    }
    *scale = (float)((double)a / QP); /* fl32(fl64(a / 127)), as the reference */
}

/* sign(l * 2^le - r * 2^re) for integers l, r < 2^62, exactly: shift the larger exponent's side
 * left until the exponents meet or it passes 2^62, where it is larger than the other side. */
static int compare_scaled(uint64_t l, int le, uint64_t r, int re) {
    while (le > re && l != 0 && l < (UINT64_C(1) << 62)) {
        l <<= 1;
        le--;
    }
    while (re > le && r != 0 && r < (UINT64_C(1) << 62)) {
        r <<= 1;
        re--;
    }
    if (le > re && l != 0) {
        return 1;
    }
    if (re > le && r != 0) {
        return -1;
    }
    if (le != re) { /* the shifted side is zero */
        return l != 0 ? 1 : (r != 0 ? -1 : 0);
    }
    return (l > r) - (l < r);
}

/* round_half_even(|x| * 127 / a) for double 0 <= |x| <= a, decided on the EXACT quotient.
 *
 * In double, x * 127 has up to 60 significant bits, so the quotient is no longer exact enough:
 * |x| = fl(1.5/127) next to a = 1 gives x * 127 = 1.5 - 2e-17, which double arithmetic rounds to
 * the tie 1.5 (and then to the even 2) where the exact code is 1.  long double would fix it only
 * where it has a 64-bit significand (x86; it is a plain double on MSVC and Apple arm64), so this
 * kernel does not rely on it.  Instead:
 *  - fast path: q = (|x| / a) * 127 is within 2 roundings of the exact value (|q - q_exact| <=
 *    2^-44, or a subnormal's absolute 2^-1067 where q is ~0); a q more than 2^-40 from the half-
 *    integer floor(q) + 1/2 is decided by it (and floor(q) is then the exact floor).
 *  - exact path (q within 2^-40 of k + 1/2): compare 2 * 127 * |x| with (2k + 1) * a as integers
 *    m * 2^p (decompose): 254 * m_x < 2^61 and (2k + 1) * m_a < 2^8 * 2^53; compare_scaled does
 *    the rest.  Equal means an exact tie, which half-even sends to the even neighbour.
 * |x| / a cannot overflow (|x| <= a) and a >= 1e-5 so x * 127 is never formed in floating point. */
static double round_quotient_f64(double magnitude, double a) {
    const double q = (magnitude / a) * QP;
    const double k = floor(q);
    const double distance = q - (k + 0.5);
    if (distance > 0x1p-40) {
        return k + 1;
    }
    if (distance < -0x1p-40) {
        return k;
    }
    uint64_t mx, ma;
    int px, pa;
    decompose(magnitude, &mx, &px);
    decompose(a, &ma, &pa);
    const int side = compare_scaled(2 * QP * mx, px, (uint64_t)(2 * k + 1) * ma, pa);
    if (side > 0) {
        return k + 1;
    }
    if (side < 0) {
        return k;
    }
    return fmod(k, 2.0) == 0.0 ? k : k + 1; /* exactly k + 1/2: ties to even */
}

static void act_row_f64(const double *x, size_t k, int8_t *codes, double *scale) {
    double absmax = 0.0;
    for (size_t i = 0; i < k; i++) {
        const double magnitude = fabs(x[i]);
        absmax = magnitude > absmax ? magnitude : absmax;
    }
    const double a = absmax > EPS_F64 ? absmax : EPS_F64;
    for (size_t i = 0; i < k; i++) {
        const double code = round_quotient_f64(fabs(x[i]), a);
        codes[i] = clamp_code(x[i] < 0 ? -code : code); /* half-even is symmetric in the sign */
    }
    *scale = a / QP;
}

void act_quantize_f32(const float *x, size_t rows, size_t k, int8_t *codes, float *scales) {
    for (size_t r = 0; r < rows; r++) {
        act_row_f32(x + r * k, k, codes + r * k, scales + r);
    }
}

void act_quantize_f64(const double *x, size_t rows, size_t k, int8_t *codes, double *scales) {
    for (size_t r = 0; r < rows; r++) {
        act_row_f64(x + r * k, k, codes + r * k, scales + r);
    }
}

/* ------------------------------------------------------------------ BitLinear (BL-*) */

/* The dot product of int8 activation codes and ternary weight codes must be exact (BL-2):
 * |sum| <= 127 * K, so int32 is exact for any K below 16 million.  The broken variant keeps the
 * sum in int16 like a NEON kernel that never widens its lanes: it wraps from K = 259 (33,000 >
 * 32,767; microsoft/BitNet #600).  The int16 conversion wraps modulo 2^16 on every compiler
 * qcheck targets (implementation-defined in C, modular in GCC and Clang). */
#ifdef QCHECK_EXAMPLE_INT16_ACCUMULATOR
typedef int16_t accumulator;
#define ACCUMULATOR_BITS 16
#else
typedef int32_t accumulator;
#define ACCUMULATOR_BITS 32
#endif

int bitnet_accumulator_bits(void) { return ACCUMULATOR_BITS; }

static accumulator dot_codes(const int8_t *x_codes, const int8_t *w_row, size_t k) {
    accumulator acc = 0;
    for (size_t i = 0; i < k; i++) {
        acc = (accumulator)(acc + x_codes[i] * w_row[i]);
    }
    return acc;
}

/* y[t, n] = acc * x_scale[t] * w_scale (+ bias[n]), in float32: the epilogue is three roundings
 * after the exact integer sum, which BL-1's tolerance allows (8 + G float32 epsilons).
 * x: (rows, k) float32; w: (n, k) int8 in {-1, 0, +1}; w_scale: the per-tensor dequantization
 * scale (mean|W|: multiply); bias: n floats or NULL; y: (rows, n). */
int bitlinear_f32(const float *x, size_t rows, size_t k, const int8_t *w, size_t n, float w_scale,
                  const float *bias, float *y) {
    int8_t *x_codes = malloc(k > 0 ? k : 1);
    if (x_codes == NULL) {
        return QCHECK_ERR_NO_MEMORY;
    }
    for (size_t t = 0; t < rows; t++) {
        float x_scale;
        act_row_f32(x + t * k, k, x_codes, &x_scale); /* per token, inside the op (BL-1) */
        for (size_t j = 0; j < n; j++) {
            float out = (float)dot_codes(x_codes, w + j * k, k) * x_scale;
            out = out * w_scale;
            if (bias != NULL) {
                out = out + bias[j];
            }
            y[t * n + j] = out;
        }
    }
    free(x_codes);
    return QCHECK_OK;
}

/* As bitlinear_f32 for float64 x: float64 scales and epilogue. */
int bitlinear_f64(const double *x, size_t rows, size_t k, const int8_t *w, size_t n, double w_scale,
                  const double *bias, double *y) {
    int8_t *x_codes = malloc(k > 0 ? k : 1);
    if (x_codes == NULL) {
        return QCHECK_ERR_NO_MEMORY;
    }
    for (size_t t = 0; t < rows; t++) {
        double x_scale;
        act_row_f64(x + t * k, k, x_codes, &x_scale);
        for (size_t j = 0; j < n; j++) {
            double out = (double)dot_codes(x_codes, w + j * k, k) * x_scale;
            out = out * w_scale;
            if (bias != NULL) {
                out = out + bias[j];
            }
            y[t * n + j] = out;
        }
    }
    free(x_codes);
    return QCHECK_OK;
}
