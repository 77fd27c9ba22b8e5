// vta_alu: the vector ALU, LANES int32 lanes (docs/vta-isa.md, "ALU"). The result is
// registered: o_result takes the lanes' results at a clock edge with i_enable high and holds
// them otherwise, so the lanes only switch for cycles that carry an ALU micro-op.
//
//     op      result for accumulator lane a and operand x (an ACC lane or the immediate)
//     MIN     min(a, x), signed                 MAX   max(a, x), signed
//     ADD     a + x, wrapping                   SHR   x >= 0: a >>> min(x, 31);
//                                                     x <  0: a << min(-x, 31), wrapping
//     MULSHR  m = x >>> 6 (26-bit multiplier), s = x & 63, p = a * m (64 bits, exact),
//             r = s == 0 ? p : (p + 2^(s-1)) >>> s, saturated to int32
//
// Reserved operations (5..7) never reach the hardware: the driver refuses such streams.
`default_nettype none
`include "vta_config.vh"

module vta_alu #(
    parameter integer LANES = 16
) (
    input  wire                clk,
    input  wire                i_enable,
    input  wire [2:0]          i_op,
    input  wire [LANES*32-1:0] i_a,
    input  wire [LANES*32-1:0] i_x,
    output reg  [LANES*32-1:0] o_result
);
    function automatic [31:0] lane_op(input [2:0] op, input [31:0] a, input [31:0] x);
        reg signed [63:0] product, rounded;
        reg [5:0] shift;
        reg [4:0] amount;
        begin
            case (op)
                `VTA_ALU_MIN: lane_op = $signed(a) < $signed(x) ? a : x;
                `VTA_ALU_MAX: lane_op = $signed(a) > $signed(x) ? a : x;
                `VTA_ALU_ADD: lane_op = a + x;
                `VTA_ALU_SHR: begin
                    if (!x[31]) begin
                        amount  = x[30:5] != 26'd0 ? 5'd31 : x[4:0];
                        lane_op = $signed(a) >>> amount;
                    end else begin
                        // -x > 31 exactly when x < -31
                        amount  = $signed(x) < -32'sd31 ? 5'd31 : 5'd0 - x[4:0];
                        lane_op = a << amount;
                    end
                end
                default: begin                                   // MULSHR
                    shift   = x[5:0];
                    product = $signed({{32{a[31]}}, a}) * $signed({{38{x[31]}}, x[31:6]});
                    rounded = shift == 6'd0 ? product
                            : (product + (64'sd1 <<< (shift - 6'd1))) >>> shift;
                    if (rounded > 64'sh7FFF_FFFF)       lane_op = 32'h7FFF_FFFF;
                    else if (rounded < -64'sh8000_0000) lane_op = 32'h8000_0000;
                    else                                lane_op = rounded[31:0];
                end
            endcase
        end
    endfunction

    integer lane;
    always @(posedge clk) begin
        if (i_enable) begin
            for (lane = 0; lane < LANES; lane = lane + 1)
                o_result[lane*32 +: 32] <= lane_op(i_op, i_a[lane*32 +: 32], i_x[lane*32 +: 32]);
        end
    end
endmodule

`default_nettype wire
