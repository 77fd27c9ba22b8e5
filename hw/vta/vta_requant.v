// vta_requant: the store's lane datapath, from accumulator lanes to output bytes
// (docs/vta-isa.md, "STORE"). Three registered stages, one element per cycle:
//
//     i_acc --> 1: + bias --> 2: vta_mulshr by operand --> 3: + zero, clamp to --> o_bytes
//               (wrapping)    (rounded, saturated)          [lower, upper], exact
//
// The parameters are registers, set at the start of every STORE (i_start). A requantizing
// STORE (i_requantize) then writes its three ACC elements as they are read (i_param_valid,
// i_param_index 0, 1, 2: bias, MULSHR operand, range lane with zero, lower and upper in
// bytes 0, 1, 2; byte 3 ignored), before its first element enters. A plain STORE runs the
// same stages with bias 0 and the operand 1 << 6 (a multiply by 1 without shift), which pass
// the lanes unchanged, and stage 3 keeps their low bytes.
`default_nettype none

module vta_requant #(
    parameter integer LANES = 16
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                i_start,
    input  wire                i_requantize,
    input  wire                i_param_valid,
    input  wire [1:0]          i_param_index,
    input  wire [LANES*32-1:0] i_param,
    input  wire                i_valid,
    input  wire                i_last,        // passed along with the element
    input  wire [LANES*32-1:0] i_acc,
    output reg                 o_valid,
    output reg                 o_last,
    output reg  [LANES*8-1:0]  o_bytes
);
    localparam [31:0] IDENTITY = 32'd1 << 6;     // MULSHR multiplier 1, shift 0

    reg                 requantize;
    reg [LANES*32-1:0]  bias, operand;
    reg [LANES*24-1:0]  ranges;                  // per lane {upper, lower, zero}

    function automatic [7:0] clamped(input [31:0] scaled, input [23:0] range);
        reg signed [32:0] shifted, low, high;
        begin
            shifted = $signed({scaled[31], scaled}) + $signed({{25{range[7]}}, range[7:0]});
            low     = $signed({{25{range[15]}}, range[15:8]});
            high    = $signed({{25{range[23]}}, range[23:16]});
            if (shifted < low)  shifted = low;
            if (shifted > high) shifted = high;
            clamped = shifted[7:0];             // in [-128, 127], as both bounds are
        end
    endfunction

    integer lane;
    always @(posedge clk) begin
        if (i_start) begin
            requantize <= i_requantize;
            bias       <= {LANES*32{1'b0}};
            operand    <= {LANES{IDENTITY}};
        end
        if (i_param_valid) begin
            for (lane = 0; lane < LANES; lane = lane + 1) begin
                case (i_param_index)
                    2'd0:    bias[lane*32 +: 32]    <= i_param[lane*32 +: 32];
                    2'd1:    operand[lane*32 +: 32] <= i_param[lane*32 +: 32];
                    default: ranges[lane*24 +: 24]  <= i_param[lane*32 +: 24];
                endcase
            end
        end
    end

    // stage 1: add the bias
    reg                valid_1, last_1, valid_2, last_2;
    reg [LANES*32-1:0] biased;
    always @(posedge clk) begin
        if (i_valid) begin
            for (lane = 0; lane < LANES; lane = lane + 1)
                biased[lane*32 +: 32] <= i_acc[lane*32 +: 32] + bias[lane*32 +: 32];
        end
    end

    // stage 2: MULSHR
    wire [LANES*32-1:0] scaled;
    vta_mulshr #(.LANES(LANES)) mulshr (
        .clk(clk), .i_enable(valid_1), .i_a(biased), .i_x(operand), .o_result(scaled));

    // stage 3: the zero point and the clamp, or the low byte
    always @(posedge clk) begin
        if (valid_2) begin
            for (lane = 0; lane < LANES; lane = lane + 1)
                o_bytes[lane*8 +: 8] <= requantize
                                        ? clamped(scaled[lane*32 +: 32], ranges[lane*24 +: 24])
                                        : scaled[lane*32 +: 8];
        end
    end

    always @(posedge clk) begin
        if (rst) begin
            {valid_1, valid_2, o_valid} <= 3'b000;
        end else begin
            {valid_1, valid_2, o_valid} <= {i_valid, valid_1, valid_2};
            {last_1, last_2, o_last}    <= {i_last, last_1, last_2};
        end
    end
endmodule

`default_nettype wire
