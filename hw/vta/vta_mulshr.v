// vta_mulshr: MULSHR on LANES int32 lanes (docs/vta-isa.md, "ALU extension: MULSHR"), a
// fixed-point multiply with a rounding shift. The ALU's MULSHR and the requantizing STORE's
// scaling are this one unit (vta_alu.v, vta_requant.v). For lane a and operand x:
//
//     m = x >>> 6 (signed 26-bit multiplier), s = x & 63, p = a * m (64 bits, exact),
//     r = s == 0 ? p : (p + 2^(s-1)) >>> s (halves round up), saturated to int32
//
// The result is registered: o_result takes the lanes' results at a clock edge with i_enable
// high and holds them otherwise, so the multipliers only switch for cycles that use them.
`default_nettype none

module vta_mulshr #(
    parameter integer LANES = 16
) (
    input  wire                clk,
    input  wire                i_enable,
    input  wire [LANES*32-1:0] i_a,
    input  wire [LANES*32-1:0] i_x,
    output reg  [LANES*32-1:0] o_result
);
    function automatic [31:0] lane_mulshr(input [31:0] a, input [31:0] x);
        reg signed [63:0] product, rounded;
        reg [5:0] shift;
        begin
            shift   = x[5:0];
            product = $signed({{32{a[31]}}, a}) * $signed({{38{x[31]}}, x[31:6]});
            rounded = shift == 6'd0 ? product
                    : (product + (64'sd1 <<< (shift - 6'd1))) >>> shift;
            if (rounded > 64'sh7FFF_FFFF)       lane_mulshr = 32'h7FFF_FFFF;
            else if (rounded < -64'sh8000_0000) lane_mulshr = 32'h8000_0000;
            else                                lane_mulshr = rounded[31:0];
        end
    endfunction

    integer lane;
    always @(posedge clk) begin
        if (i_enable) begin
            for (lane = 0; lane < LANES; lane = lane + 1)
                o_result[lane*32 +: 32] <= lane_mulshr(i_a[lane*32 +: 32], i_x[lane*32 +: 32]);
        end
    end
endmodule

`default_nettype wire
