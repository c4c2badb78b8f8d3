/* A minimal reader for .npy files (format versions 1.0, 2.0 and 3.0): parses the header dict
 * (descr, fortran_order, shape) and loads the raw little-endian data.  No pickle, no
 * byte-swapping: the golden vectors are little-endian and this reader refuses a big-endian host. */
#ifndef QCHECK_NPY_H
#define QCHECK_NPY_H

#include <stddef.h>

#define NPY_MAX_DIMS 8

typedef struct {
    char descr[16];              /* e.g. "<f4", "|i1", "<u2" (bfloat16 bits) */
    int fortran_order;           /* 0 for C (row-major) order; the golden vectors are always 0 */
    int ndim;                    /* 0 for a scalar */
    size_t shape[NPY_MAX_DIMS];
    size_t count;                /* number of elements: the product of shape (1 for a scalar) */
    size_t itemsize;             /* bytes per element, from descr */
    void *data;                  /* count * itemsize bytes, owned by the array */
} npy_array;

/* Load `path` into `out`.  Returns 0 on success; otherwise -1 with a message in `err`. */
int npy_load(const char *path, npy_array *out, char *err, size_t err_len);

/* Free the data of an array loaded by npy_load (safe on a zeroed array). */
void npy_free(npy_array *array);

#endif
