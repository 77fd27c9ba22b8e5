// vta_gemm: the GEMM core's multiply-accumulate stage: BATCH x BLOCK_OUT dot products of
// BLOCK_IN int8 pairs, each added to its accumulator lane, out[b][o] = acc[b][o] + sum over
// k of inp[b][k] * wgt[o][k] (256 multiply-accumulates in the default 1x16x16
// configuration). The sums are registered: o_sum takes them at a clock edge with i_enable
// high and holds them otherwise, so the multipliers only switch for cycles that carry a GEMM
// micro-op, and the accumulator lanes read for them need no register of their own.
// Packing (docs/vta-isa.md, "Buffers"): inp byte b*BLOCK_IN + k, wgt byte o*BLOCK_IN + k,
// acc and out lane b*BLOCK_OUT + o (32 bits, two's complement, wrapping as the ISA's GEMM does).
`default_nettype none

module vta_gemm #(
    parameter integer BATCH = 1,
    parameter integer BLOCK_IN = 16,
    parameter integer BLOCK_OUT = 16
) (
    input  wire                            clk,
    input  wire                            i_enable,
    input  wire [BATCH*BLOCK_OUT*32-1:0]   i_acc,
    input  wire [BATCH*BLOCK_IN*8-1:0]     i_inp,
    input  wire [BLOCK_OUT*BLOCK_IN*8-1:0] i_wgt,
    output reg  [BATCH*BLOCK_OUT*32-1:0]   o_sum
);
    function automatic [BATCH*BLOCK_OUT*32-1:0] accumulated(input [BATCH*BLOCK_OUT*32-1:0] acc,
            input [BATCH*BLOCK_IN*8-1:0] inp, input [BLOCK_OUT*BLOCK_IN*8-1:0] wgt);
        integer b, o, k;
        reg signed [31:0] sum;
        begin
            for (b = 0; b < BATCH; b = b + 1) begin
                for (o = 0; o < BLOCK_OUT; o = o + 1) begin
                    sum = 32'sd0;
                    for (k = 0; k < BLOCK_IN; k = k + 1)
                        sum = sum + $signed(inp[(b*BLOCK_IN + k)*8 +: 8])
                                  * $signed(wgt[(o*BLOCK_IN + k)*8 +: 8]);
                    accumulated[(b*BLOCK_OUT + o)*32 +: 32] =
                        $signed(acc[(b*BLOCK_OUT + o)*32 +: 32]) + sum;
                end
            end
        end
    endfunction

    always @(posedge clk) begin
        if (i_enable) o_sum <= accumulated(i_acc, i_inp, i_wgt);
    end
endmodule

`default_nettype wire
