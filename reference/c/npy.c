/* Minimal .npy reader: see npy.h.  The header is a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and a newline; only these three keys are read. */
#include "npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t err_len, const char *path, const char *what) {
    snprintf(err, err_len, "%s: %s", path, what);
    return -1;
}

static int host_is_little_endian(void) {
    const uint16_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

/* The text after `key` in the header, or NULL. */
static const char *after_key(const char *header, const char *key) {
    const char *at = strstr(header, key);
    if (at == NULL) {
        return NULL;
    }
    at += strlen(key);
    while (*at == ' ' || *at == ':') {
        at++;
    }
    return at;
}

static int parse_header(const char *header, npy_array *out) {
    const char *descr = after_key(header, "'descr'");
    if (descr == NULL || *descr != '\'') {
        return -1;
    }
    descr++;
    size_t n = 0;
    while (descr[n] != '\'' && descr[n] != '\0' && n + 1 < sizeof out->descr) {
        out->descr[n] = descr[n];
        n++;
    }
    out->descr[n] = '\0';
    if (descr[n] != '\'' || n < 3) {
        return -1;
    }
    out->itemsize = (size_t)strtoul(out->descr + 2, NULL, 10);
    if (out->itemsize == 0) {
        return -1;
    }

    const char *order = after_key(header, "'fortran_order'");
    if (order == NULL) {
        return -1;
    }
    out->fortran_order = strncmp(order, "True", 4) == 0;

    const char *shape = after_key(header, "'shape'");
    if (shape == NULL || *shape != '(') {
        return -1;
    }
    shape++;
    out->ndim = 0;
    out->count = 1;
    while (*shape != ')') {
        while (*shape == ' ' || *shape == ',') {
            shape++;
        }
        if (*shape == ')') {
            break;
        }
        char *end = NULL;
        unsigned long long side = strtoull(shape, &end, 10);
        if (end == shape || out->ndim == NPY_MAX_DIMS) {
            return -1;
        }
        out->shape[out->ndim++] = (size_t)side;
        out->count *= (size_t)side;
        shape = end;
    }
    return 0;
}

int npy_load(const char *path, npy_array *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    if (!host_is_little_endian()) {
        return fail(err, err_len, path, "this reader needs a little-endian host");
    }
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        return fail(err, err_len, path, "cannot open");
    }
    unsigned char preamble[12];
    if (fread(preamble, 1, 10, file) != 10 || memcmp(preamble, "\x93NUMPY", 6) != 0) {
        fclose(file);
        return fail(err, err_len, path, "not a .npy file (bad magic)");
    }
    size_t header_len;
    if (preamble[6] == 1) {
        header_len = (size_t)preamble[8] | ((size_t)preamble[9] << 8);
    } else if (preamble[6] == 2 || preamble[6] == 3) {
        if (fread(preamble + 10, 1, 2, file) != 2) {
            fclose(file);
            return fail(err, err_len, path, "truncated header");
        }
        header_len = (size_t)preamble[8] | ((size_t)preamble[9] << 8) | ((size_t)preamble[10] << 16) |
                     ((size_t)preamble[11] << 24);
    } else {
        fclose(file);
        return fail(err, err_len, path, "unsupported .npy version");
    }
    char *header = malloc(header_len + 1);
    if (header == NULL || fread(header, 1, header_len, file) != header_len) {
        free(header);
        fclose(file);
        return fail(err, err_len, path, "truncated header");
    }
    header[header_len] = '\0';
    int parsed = parse_header(header, out);
    free(header);
    if (parsed != 0) {
        fclose(file);
        return fail(err, err_len, path, "cannot parse the header dict (descr, fortran_order, shape)");
    }
    if (out->fortran_order) {
        fclose(file);
        return fail(err, err_len, path, "fortran_order arrays are not supported");
    }
    size_t bytes = out->count * out->itemsize;
    out->data = malloc(bytes > 0 ? bytes : 1);
    if (out->data == NULL || fread(out->data, 1, bytes, file) != bytes) {
        fclose(file);
        npy_free(out);
        return fail(err, err_len, path, "truncated data");
    }
    fclose(file);
    return 0;
}

void npy_free(npy_array *array) {
    free(array->data);
    array->data = NULL;
}
