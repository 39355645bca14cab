# Stub of the compiled module fastbp/_kernels/sklearn_loss.pyx: it has no def entry
# points (its cdef kernels are cimported by network.pyx).
