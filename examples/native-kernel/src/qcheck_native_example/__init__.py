"""A BitNet b1.58 kernel in C (``bitnet_kernels.c``) exposed to qcheck through ctypes.

``backend.Backend`` is the correct kernel, ``backend.Int16Backend`` a deliberately broken build;
``build`` compiles the C with the system compiler. Not part of qcheck: an example to copy.
"""
