"""byoc's host backend: partitions lowered to LLVM IR and JIT-compiled for the host CPU."""

__version__ = "0.1.0"
