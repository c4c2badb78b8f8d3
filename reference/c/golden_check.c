/* golden_check: run a C kernel on qcheck's golden vectors and compare bit-exactly.
 *
 *   cc -std=c11 -O2 -Wall -Wextra -Werror -o golden_check golden_check.c act_quantize.c npy.c -lm
 *   ./golden_check ..            (the reference/ directory: it holds manifest.json)
 *
 * Reads manifest.json line by line (one case per line), takes the act_quantize cases on float32
 * input, loads x, codes and scale with a minimal .npy reader, runs act_quantize_f32 and compares
 * codes and scales bit for bit.  Prints `case-id: OK` or `case-id: FAIL (first mismatch at ...)`
 * per case, then `n/m cases passed`; exits 1 on any failure (or when no case was found). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act_quantize.h"
#include "npy.h"

#define OP_KEY "\"op\": \"act_quantize\""
#define PATH_MAX_LEN 4096

/* The conventions this kernel implements, as the manifest spells them. */
static const char *const REQUIRED_CONVENTIONS[] = {
    "\"rounding\": \"half-even\"",
    "\"eps_mode\": \"clamp\"",
    "\"eps\": 1e-05",
    "\"activation_granularity\": \"per-row\"",
    "\"activation_bits\": 8",
};

/* One line of `file` in a growing buffer; NULL at end of file. */
static char *read_line(FILE *file, char **buffer, size_t *capacity) {
    size_t length = 0;
    int c;
    while ((c = fgetc(file)) != EOF) {
        if (length + 2 > *capacity) {
            size_t grown = *capacity ? *capacity * 2 : 4096;
            char *bigger = realloc(*buffer, grown);
            if (bigger == NULL) {
                return NULL;
            }
            *buffer = bigger;
            *capacity = grown;
        }
        if (c == '\n') {
            break;
        }
        (*buffer)[length++] = (char)c;
    }
    if (c == EOF && length == 0) {
        return NULL;
    }
    (*buffer)[length] = '\0';
    return *buffer;
}

/* Copy the JSON string value that starts right after `key` (which ends with the opening quote)
 * into `out`; 0 on success. */
static int string_after(const char *from, const char *key, char *out, size_t out_len) {
    const char *at = strstr(from, key);
    if (at == NULL) {
        return -1;
    }
    at += strlen(key);
    size_t n = 0;
    while (at[n] != '"' && at[n] != '\0' && n + 1 < out_len) {
        out[n] = at[n];
        n++;
    }
    out[n] = '\0';
    return at[n] == '"' ? 0 : -1;
}

/* The "file" and "dtype" of the array entry named `name` in a case line. */
static int array_entry(const char *line, const char *name, char *file, size_t file_len, char *dtype,
                       size_t dtype_len) {
    char key[64];
    snprintf(key, sizeof key, "{\"name\": \"%s\", ", name);
    const char *entry = strstr(line, key);
    if (entry == NULL) {
        return -1;
    }
    return string_after(entry, "\"file\": \"", file, file_len) ||
           string_after(entry, "\"dtype\": \"", dtype, dtype_len);
}

/* "i,j,k" of the flat row-major index `flat` in `array`. */
static void format_index(const npy_array *array, size_t flat, char *out, size_t out_len) {
    size_t index[NPY_MAX_DIMS];
    for (int d = array->ndim - 1; d >= 0; d--) {
        index[d] = array->shape[d] ? flat % array->shape[d] : 0;
        flat = array->shape[d] ? flat / array->shape[d] : 0;
    }
    size_t used = 0;
    out[0] = '\0';
    for (int d = 0; d < array->ndim && used < out_len; d++) {
        used += (size_t)snprintf(out + used, out_len - used, d ? ",%zu" : "%zu", index[d]);
    }
}

static int same_shape(const npy_array *a, const npy_array *b) {
    if (a->ndim != b->ndim) {
        return 0;
    }
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] != b->shape[d]) {
            return 0;
        }
    }
    return 1;
}

/* Run one case; returns 1 if it passed.  `why` receives the reason for a failure. */
static int run_case(const char *root, const char *line, char *why, size_t why_len) {
    char files[3][2 * PATH_MAX_LEN], dtypes[3][16];
    const char *names[3] = {"x", "codes", "scale"};
    npy_array arrays[3];
    memset(arrays, 0, sizeof arrays);
    int passed = 0;
    for (int i = 0; i < 3; i++) {
        char relative[PATH_MAX_LEN];
        if (array_entry(line, names[i], relative, sizeof relative, dtypes[i], sizeof dtypes[i]) != 0) {
            snprintf(why, why_len, "manifest line has no %s entry", names[i]);
            goto done;
        }
        int written = snprintf(files[i], sizeof files[i], "%s/%s", root, relative);
        if (written < 0 || (size_t)written >= sizeof files[i]) {
            snprintf(why, why_len, "path of %s too long", names[i]);
            goto done;
        }
        if (npy_load(files[i], &arrays[i], why, why_len) != 0) {
            goto done;
        }
    }
    npy_array *x = &arrays[0], *codes = &arrays[1], *scale = &arrays[2];
    if (strcmp(x->descr, "<f4") != 0 || strcmp(codes->descr, "|i1") != 0 || strcmp(scale->descr, "<f4") != 0) {
        snprintf(why, why_len, "unexpected dtypes x %s codes %s scale %s", x->descr, codes->descr, scale->descr);
        goto done;
    }
    if (x->ndim < 1 || !same_shape(x, codes) || scale->ndim != x->ndim || scale->shape[x->ndim - 1] != 1) {
        snprintf(why, why_len, "shapes of x, codes and scale do not fit");
        goto done;
    }
    size_t k = x->shape[x->ndim - 1];
    size_t rows = k ? x->count / k : 0;
    if (scale->count != rows) {
        snprintf(why, why_len, "scale has %zu elements for %zu rows", scale->count, rows);
        goto done;
    }
    int8_t *got_codes = malloc(x->count ? x->count : 1);
    float *got_scales = malloc((rows ? rows : 1) * sizeof(float));
    if (got_codes == NULL || got_scales == NULL) {
        free(got_codes);
        free(got_scales);
        snprintf(why, why_len, "out of memory");
        goto done;
    }
    act_quantize_f32((const float *)x->data, rows, k, got_codes, got_scales);
    const int8_t *want_codes = (const int8_t *)codes->data;
    passed = 1;
    for (size_t i = 0; i < x->count && passed; i++) {
        if (got_codes[i] != want_codes[i]) {
            char where[128];
            format_index(codes, i, where, sizeof where);
            snprintf(why, why_len, "first mismatch at codes[%s]: got %d, expected %d (x = %.9g)", where,
                     got_codes[i], want_codes[i], (double)((const float *)x->data)[i]);
            passed = 0;
        }
    }
    for (size_t r = 0; r < rows && passed; r++) {
        uint32_t got_bits, want_bits;
        memcpy(&got_bits, &got_scales[r], 4);
        memcpy(&want_bits, (const char *)scale->data + 4 * r, 4);
        if (got_bits != want_bits) {
            char where[128];
            format_index(scale, r, where, sizeof where);
            float want;
            memcpy(&want, &want_bits, 4);
            snprintf(why, why_len, "first mismatch at scale[%s]: got %.9g (0x%08x), expected %.9g (0x%08x)", where,
                     (double)got_scales[r], (unsigned)got_bits, (double)want, (unsigned)want_bits);
            passed = 0;
        }
    }
    free(got_codes);
    free(got_scales);
done:
    for (int i = 0; i < 3; i++) {
        npy_free(&arrays[i]);
    }
    return passed;
}

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : "..";
    char manifest[PATH_MAX_LEN];
    int written = snprintf(manifest, sizeof manifest, "%s/manifest.json", root);
    if (written < 0 || (size_t)written >= sizeof manifest) {
        fprintf(stderr, "golden_check: path too long\n");
        return 2;
    }
    FILE *file = fopen(manifest, "r");
    if (file == NULL) {
        fprintf(stderr, "golden_check: cannot open %s\n", manifest);
        return 2;
    }
    char *line = NULL;
    size_t capacity = 0;
    int total = 0, passed = 0, skipped = 0;
    while (read_line(file, &line, &capacity) != NULL) {
        if (strstr(line, OP_KEY) == NULL) {
            continue;
        }
        char id[512], x_file[PATH_MAX_LEN], x_dtype[16];
        if (string_after(line, "\"id\": \"", id, sizeof id) != 0 ||
            array_entry(line, "x", x_file, sizeof x_file, x_dtype, sizeof x_dtype) != 0) {
            fprintf(stderr, "golden_check: malformed manifest line: %.80s...\n", line);
            total++;
            continue;
        }
        if (strcmp(x_dtype, "<f4") != 0) {
            continue; /* this kernel takes float32 input only */
        }
        int supported = 1;
        for (size_t c = 0; c < sizeof REQUIRED_CONVENTIONS / sizeof *REQUIRED_CONVENTIONS; c++) {
            supported &= strstr(line, REQUIRED_CONVENTIONS[c]) != NULL;
        }
        if (!supported) {
            printf("%s: SKIP (conventions this kernel does not implement)\n", id);
            skipped++;
            continue;
        }
        char why[1024] = "";
        total++;
        if (run_case(root, line, why, sizeof why)) {
            passed++;
            printf("%s: OK\n", id);
        } else {
            printf("%s: FAIL (%s)\n", id, why);
        }
    }
    free(line);
    fclose(file);
    printf("%d/%d cases passed", passed, total);
    if (skipped) {
        printf(" (%d skipped)", skipped);
    }
    printf("\n");
    if (total == 0) {
        fprintf(stderr, "golden_check: no act_quantize float32 case in %s\n", manifest);
        return 1;
    }
    return passed == total ? 0 : 1;
}
