r"""Software prefetch for the Numba kernels: ``prefetch(row, j)`` asks for ``row[j]``'s cache line.

Why: the log-sum-exp over K reads a (K, B) array once, spending ~20 vector instructions per
8 elements on the exponential. With that much arithmetic in the loop the hardware prefetcher
alone does not keep enough memory requests in flight: on the project's first host (16 GB/s of
one-core read bandwidth) the kernel ran at 5.8 GB/s. Asking for the rows a few iterations ahead
(``llvm.prefetch``, which compiles to one ``prefetcht0`` instruction per cache line) brought it
to about 10 GB/s -- see :func:`scratchdgm.kernels.cpu.logsumexp`. (On the present host, with
25-30 GB/s, the exponential's arithmetic is the limit: ``scratchdgm bench logsumexp``.)

A prefetch is only a hint: it never faults, never changes a result, and the kernels are
correct without it. Under ``NUMBA_DISABLE_JIT=1`` it is a Python function that does nothing.
"""

from numba.core import config

__all__ = ["prefetch"]


def prefetch(row, j):
    """Hint that ``row[j]`` (a 1-D contiguous array) will be read soon; no effect in Python."""
    return None


if not config.DISABLE_JIT:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.core.extending import intrinsic

    @intrinsic
    def _prefetch_intrinsic(typingctx, row, j):
        if not (isinstance(row, types.Array) and row.ndim == 1 and isinstance(j, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            arr = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, signature.args[0], arr, [args[1]],
                                           wraparound=False, boundscheck=False)
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                "llvm.prefetch.p0")
            # (address, 0 = read, 3 = keep in all cache levels, 1 = data cache)
            builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0),
                              ir.Constant(i32, 3), ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return types.none(row, j), codegen

    from numba.core.extending import overload

    @overload(prefetch, jit_options={"error_model": "numpy"})
    def _prefetch_overload(row, j):
        return lambda row, j: _prefetch_intrinsic(row, j)
