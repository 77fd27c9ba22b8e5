// vta_alu: the vector ALU, LANES int32 lanes (docs/vta-isa.md, "ALU"). The result is
// registered: o_result takes the lanes' results at a clock edge with i_enable high and holds
// them otherwise, so the lanes only switch for cycles that carry an ALU micro-op.
//
//     op      result for accumulator lane a and operand x (an ACC lane or the immediate)
//     MIN     min(a, x), signed                 MAX   max(a, x), signed
//     ADD     a + x, wrapping                   SHR   x >= 0: a >>> min(x, 31);
//                                                     x <  0: a << min(-x, 31), wrapping
//     MULSHR  vta_mulshr: a * (x >>> 6), shifted right by x & 63 with rounding, saturated
//
//     i_a, i_x --+--> MIN / MAX / ADD / SHR --> register --+--> o_result (the registered
//                +--> vta_mulshr (registered) -------------+    operation's)
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
    output wire [LANES*32-1:0] o_result
);
    function automatic [31:0] lane_op(input [2:0] op, input [31:0] a, input [31:0] x);
        reg [4:0] amount;
        begin
            case (op)
                `VTA_ALU_MIN: lane_op = $signed(a) < $signed(x) ? a : x;
                `VTA_ALU_MAX: lane_op = $signed(a) > $signed(x) ? a : x;
                `VTA_ALU_ADD: lane_op = a + x;
                default: begin                                   // SHR
                    if (!x[31]) begin
                        amount  = x[30:5] != 26'd0 ? 5'd31 : x[4:0];
                        lane_op = $signed(a) >>> amount;
                    end else begin
                        // -x > 31 exactly when x < -31
                        amount  = $signed(x) < -32'sd31 ? 5'd31 : 5'd0 - x[4:0];
                        lane_op = a << amount;
                    end
                end
            endcase
        end
    endfunction

    wire                is_mulshr = i_op == `VTA_ALU_MULSHR;
    reg                 mulshr_result;        // the registered result is vta_mulshr's
    reg  [LANES*32-1:0] simple;
    wire [LANES*32-1:0] scaled;

    vta_mulshr #(.LANES(LANES)) mulshr (
        .clk(clk), .i_enable(i_enable && is_mulshr), .i_a(i_a), .i_x(i_x), .o_result(scaled));

    integer lane;
    always @(posedge clk) begin
        if (i_enable) begin
            mulshr_result <= is_mulshr;
            if (!is_mulshr) begin
                for (lane = 0; lane < LANES; lane = lane + 1)
                    simple[lane*32 +: 32] <= lane_op(i_op, i_a[lane*32 +: 32],
                                                     i_x[lane*32 +: 32]);
            end
        end
    end

    assign o_result = mulshr_result ? scaled : simple;
endmodule

`default_nettype wire
