/* act_quantize for float32 activations under qcheck's default conventions (SPEC ACT-1..3):
 * per row (token) of k elements, a = max(absmax of the row, fl32(1e-5)),
 * codes = clamp(round_half_even(x * 127 / a), -128, 127), scale = fl32(a / 127). */
#ifndef QCHECK_ACT_QUANTIZE_H
#define QCHECK_ACT_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

/* x: rows * k floats, row-major; codes: rows * k int8; scales: rows floats (dequantization
 * scales: value ~ code * scale).  Build with -DQCHECK_BROKEN_ROUNDING for a deliberately wrong
 * kernel (C roundf: ties away from zero) that the golden tie cases must catch. */
void act_quantize_f32(const float *x, size_t rows, size_t k, int8_t *codes, float *scales);

#endif
