"""The register-blocked float32 GEMM micro-kernel, and masked vector helpers.

``uk_<MR>x<NRV>(a, b, ldb, c, ldc, kc, accumulate, rows, cols)`` computes one MR x NR tile
(NR = NRV vectors of ``lanes`` floats) of ``C (+)= A @ B``: ``a`` is a packed sliver of A
(``kc`` groups of MR values, one per row), ``b`` a panel of B (``kc`` rows of NR values,
``ldb`` floats apart), ``c`` the tile's top-left element in a row-major C with rows ``ldc``
floats apart. The MR x NRV accumulators live in vector registers; each step of the k loop
broadcasts MR scalars of A and does MR x NRV fused multiply-adds. Only the first ``rows``
rows and ``cols`` columns of C are read (when ``accumulate`` is non-zero) and written, with
masked loads and stores, so edge tiles need no copies. One function per (MR, NRV, lanes) is
shared by all the kernels of a module.
"""

from __future__ import annotations

from llvmlite import ir

from byoc_cpu_llvm.codegen import (
    F32,
    I1,
    I32,
    I64,
    PTR,
    VOID,
    KernelBuilder,
    const_i64,
    counted_loop,
    splat,
)

UKERNEL_ARGS = [PTR, PTR, I64, PTR, I64, I64, I64, I64, I64]


def vec_type(lanes: int, elem: ir.Type = F32) -> ir.VectorType:
    return ir.VectorType(elem, lanes)


def _masked_fn(module: ir.Module, kind: str, vt: ir.VectorType) -> ir.Function:
    suffix = f"v{vt.count}{'f32' if vt.element == F32 else _int_suffix(vt.element)}"
    mask_t = ir.VectorType(I1, vt.count)
    if kind == "load":
        name = f"llvm.masked.load.{suffix}.p0"
        fnty = ir.FunctionType(vt, [PTR, I32, mask_t, vt])
    else:
        name = f"llvm.masked.store.{suffix}.p0"
        fnty = ir.FunctionType(VOID, [vt, PTR, I32, mask_t])
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, fnty, name)
    return fn


def _int_suffix(t: ir.Type) -> str:
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    if isinstance(t, ir.DoubleType):
        return "f64"
    raise ValueError(t)


def masked_load(b: ir.IRBuilder, module: ir.Module, ptr: ir.Value, mask: ir.Value,
                vt: ir.VectorType) -> ir.Value:
    """Load a vector of ``vt`` from ``ptr``; masked-off lanes read as zero."""
    fn = _masked_fn(module, "load", vt)
    return b.call(fn, [ptr, ir.Constant(I32, 4), mask, ir.Constant(vt, None)])


def masked_gather(b: ir.IRBuilder, module: ir.Module, pointers: ir.Value, mask: ir.Value,
                  passthrough: ir.Value, align: int) -> ir.Value:
    """The lanes of ``passthrough``'s type read from ``pointers`` (a vector of pointers, each
    ``align``-byte aligned) where ``mask`` is set; ``passthrough``'s lanes elsewhere."""
    vt = passthrough.type
    suffix = f"v{vt.count}{'f32' if vt.element == F32 else _int_suffix(vt.element)}"
    name = f"llvm.masked.gather.{suffix}.v{vt.count}p0"
    fn = module.globals.get(name) or ir.Function(
        module, ir.FunctionType(vt, [pointers.type, I32, mask.type, vt]), name)
    return b.call(fn, [pointers, ir.Constant(I32, align), mask, passthrough])


def masked_store(b: ir.IRBuilder, module: ir.Module, value: ir.Value, ptr: ir.Value,
                 mask: ir.Value, align: int = 4) -> None:
    """Store the lanes of ``value`` that ``mask`` sets at ``ptr`` (aligned to ``align``
    bytes)."""
    fn = _masked_fn(module, "store", value.type)
    b.call(fn, [value, ptr, ir.Constant(I32, align), mask])


def lane_mask(b: ir.IRBuilder, count: ir.Value, lanes: int) -> ir.Value:
    """``<lanes x i1>`` with the first ``count`` lanes set (count may be <= 0 or > lanes)."""
    iota = ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))
    return b.icmp_signed("<", iota, splat(b, count, lanes))


def tile_products(b: ir.IRBuilder, module: ir.Module, a: ir.Value, bp: ir.Value,
                  ldb: ir.Value, kc: ir.Value, inits: list[ir.Value], mr: int, nrv: int,
                  lanes: int) -> list[ir.Value]:
    """The MR x NRV accumulators of a tile after ``kc`` steps from ``inits`` (row-major):
    each step broadcasts MR scalars of the sliver ``a`` and loads NRV vectors of the panel
    ``bp`` (rows ``ldb`` floats apart)."""
    vt = vec_type(lanes)
    fma = module.globals.get(f"llvm.fma.v{lanes}f32")
    if fma is None:
        fma = ir.Function(module, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fma.v{lanes}f32")
    with counted_loop(b, const_i64(0), kc, "k", carried=[a, bp, *inits]) as loop:
        pa, pb, *accs = loop.carried
        bvecs = [b.load(b.gep(pb, [const_i64(v * lanes)], source_etype=F32, inbounds=True),
                        typ=vt, align=4) for v in range(nrv)]
        new_accs = []
        for i in range(mr):
            scalar = b.load(b.gep(pa, [const_i64(i)], source_etype=F32, inbounds=True),
                            typ=F32, align=4)
            bcast = splat(b, scalar, lanes)
            for v in range(nrv):
                new_accs.append(b.call(fma, [bcast, bvecs[v], accs[i * nrv + v]]))
        loop.next_carried = [b.gep(pa, [const_i64(mr)], source_etype=F32, inbounds=True),
                             b.gep(pb, [ldb], source_etype=F32, inbounds=True), *new_accs]
    return accs


def ukernel(module: ir.Module, mr: int, nrv: int, lanes: int) -> ir.Function:
    """The module's micro-kernel for MR x (NRV * lanes) tiles (emitted on first use)."""
    name = f"byoc_uk_{mr}x{nrv}x{lanes}"
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(VOID, UKERNEL_ARGS), name)
    fn.attributes.add("nounwind")
    fn.attributes.add("noinline")
    a, bp, ldb, c, ldc, kc, accumulate, rows, cols = fn.args
    for arg in (a, bp, c):
        arg.add_attribute("noalias")
    vt = vec_type(lanes)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    keep = b.icmp_signed("!=", accumulate, const_i64(0))
    c_ptrs = []
    for i in range(mr):
        row_c = b.gep(c, [b.mul(ldc, const_i64(i))], source_etype=F32, inbounds=True)
        c_ptrs += [b.gep(row_c, [const_i64(v * lanes)], source_etype=F32, inbounds=True)
                   for v in range(nrv)]

    # A whole tile (almost every call) loads and stores C without masks; an edge tile masks
    # its rows and columns.
    whole = b.and_(b.icmp_signed("==", rows, const_i64(mr)),
                   b.icmp_signed("==", cols, const_i64(nrv * lanes)))
    zero = ir.Constant(vt, None)

    def products(inits):
        return tile_products(b, module, a, bp, ldb, kc, inits, mr, nrv, lanes)

    with b.if_else(whole) as (then, otherwise):
        with then:
            inits = [b.select(keep, b.load(ptr, typ=vt, align=4), zero) for ptr in c_ptrs]
            for acc, ptr in zip(products(inits), c_ptrs):
                b.store(acc, ptr, align=4)
        with otherwise:
            col_masks = [lane_mask(b, b.sub(cols, const_i64(v * lanes)), lanes)
                         for v in range(nrv)]
            no_mask = ir.Constant(ir.VectorType(I1, lanes), None)
            masks = [b.select(b.icmp_signed(">", rows, const_i64(i)), col_masks[v], no_mask)
                     for i in range(mr) for v in range(nrv)]
            inits = [masked_load(b, module, ptr, b.select(keep, mask, no_mask), vt)
                     for mask, ptr in zip(masks, c_ptrs)]
            for acc, mask, ptr in zip(products(inits), masks, c_ptrs):
                masked_store(b, module, acc, ptr, mask)
    b.ret_void()
    return fn


def call_ukernel(kb: KernelBuilder, mr: int, nrv: int, lanes: int, args: list) -> None:
    fn = ukernel(kb.module, mr, nrv, lanes)
    kb.b.call(fn, [const_i64(a) if isinstance(a, int) else a for a in args])


__all__ = ["call_ukernel", "lane_mask", "masked_gather", "masked_load", "masked_store",
           "tile_products", "ukernel", "vec_type"]
