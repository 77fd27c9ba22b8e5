// npu_requant: requantize-and-activate, LANES lanes per cycle, a 5-stage pipeline.
//
// Each lane turns an int32 accumulator into an 8-bit output exactly as byoc's reference does
// in float32 arithmetic,
//
//     y = clip(saturate(round_half_even(float32(acc) * multiplier) + zero_point), qmin, qmax)
//
// but with integer hardware only: both operands become 24-bit significands with exponents,
// and every rounding a float32 unit would make is made here at the same place, to nearest
// with ties to even.
//
//     i_acc -------> 1 NORMALIZE  |acc| shifted to bit 31, rounded to 24 bits  = float32(acc)
//     i_multiplier -> 1           {1, mantissa} and exponent
//                    2 MULTIPLY   24 x 24 -> 48-bit exact product
//                    3 ROUND      product rounded to 24 bits                   = float32 product
//                    4 INTEGER    shifted to the binary point, rounded to an integer;
//                                 magnitudes over 1023 held at 1023 (saturating either way)
//     i_zero_point -> 5 ACTIVATE  + zero point, saturate to int8/uint8, clamp to [qmin, qmax]
//     i_qmin, i_qmax  |
//     i_out_signed    +---(delayed 4 cycles beside the data)---> o_result, o_valid
//
// Every stage is registered: a vector presented with i_valid in cycle t appears on o_result
// with o_valid in cycle t + 5. There is no back-pressure; one vector enters per cycle.
// The shared operands (zero point, clamps, output type) travel with their vector, so they may
// change from one vector to the next.
//
// Operand ranges: i_multiplier is any finite float32 (sign included); i_zero_point, i_qmin
// and i_qmax are signed 9-bit, enough for both output types. i_out_signed selects int8
// (-128..127) or uint8 (0..255) saturation. Out-of-range float32 products need no special
// case: below 2^-126 (where float32 would turn subnormal) they are under 0.5 and round to 0
// anyway, and anything that would overflow float32 saturates anyway.
`default_nettype none

module npu_requant #(
    parameter integer LANES = 16
) (
    input  wire               clk,
    input  wire               rst,
    input  wire               i_valid,
    input  wire [LANES*32-1:0] i_acc,          // int32 per lane
    input  wire [LANES*32-1:0] i_multiplier,   // float32 bits per lane
    input  wire [8:0]         i_zero_point,    // signed, shared by the lanes
    input  wire [8:0]         i_qmin,          // signed
    input  wire [8:0]         i_qmax,          // signed
    input  wire               i_out_signed,    // 1: int8 output, 0: uint8
    output wire               o_valid,
    output wire [LANES*8-1:0] o_result
);
    localparam integer STAGES = 5;
    localparam integer SHARED_BITS = 9 + 9 + 9 + 1;
    // Integer magnitudes are kept to 10 bits: a magnitude of 1024 or more plus any 9-bit
    // zero point is outside -256..255, so it saturates exactly as its true value would.
    localparam [9:0] MAGNITUDE_MAX = 10'd1023;

    // Round to nearest, ties to even: the increment for a truncated value whose last kept
    // bit is lsb, first dropped bit is half and remaining dropped bits are sticky.
    function automatic round_up(input lsb, input half, input sticky);
        round_up = half && (sticky || lsb);
    endfunction

    function automatic [5:0] leading_zeros(input [31:0] value);
        integer position;
        begin
            leading_zeros = 6'd32;
            for (position = 0; position < 32; position = position + 1)
                if (value[position]) leading_zeros = 6'd31 - position[5:0];
        end
    endfunction

    // The valid bit and the shared operands, one register per stage.
    reg [STAGES-1:0]       valid;
    reg [SHARED_BITS-1:0]  shared [0:STAGES-2];

    integer stage;
    always @(posedge clk) begin
        if (rst) begin
            valid <= {STAGES{1'b0}};
        end else begin
            valid <= {valid[STAGES-2:0], i_valid};
        end
        shared[0] <= {i_zero_point, i_qmin, i_qmax, i_out_signed};
        for (stage = 1; stage < STAGES - 1; stage = stage + 1)
            shared[stage] <= shared[stage - 1];
    end
    assign o_valid = valid[STAGES-1];

    // Stage 5's shared operands, sign-extended to the width of its arithmetic.
    wire [SHARED_BITS-1:0] shared_5   = shared[STAGES-2];
    wire signed [11:0]     zero_point = {{3{shared_5[27]}}, shared_5[27:19]};
    wire signed [11:0]     qmin       = {{3{shared_5[18]}}, shared_5[18:10]};
    wire signed [11:0]     qmax       = {{3{shared_5[9]}}, shared_5[9:1]};
    wire                   out_signed = shared_5[0];
    wire signed [11:0]     out_low    = out_signed ? -12'sd128 : 12'sd0;
    wire signed [11:0]     out_high   = out_signed ? 12'sd127 : 12'sd255;

    genvar lane;
    generate
        for (lane = 0; lane < LANES; lane = lane + 1) begin : g_lane
            // -- 1 NORMALIZE: float32(acc) = acc_significand * 2^(8 - zeros + carry) -------
            wire [31:0] acc        = i_acc[lane*32 +: 32];
            wire [31:0] multiplier = i_multiplier[lane*32 +: 32];
            wire [31:0] acc_magnitude = acc[31] ? 32'd0 - acc : acc;   // 2^31 for INT32_MIN
            wire [5:0]  acc_zeros     = leading_zeros(acc_magnitude);  // 32 when acc = 0
            wire [31:0] acc_aligned   = acc_magnitude << acc_zeros[4:0];
            // bits 7..0 are non-zero only when |acc| >= 2^24: float32 cannot hold them
            wire [24:0] acc_rounded = {1'b0, acc_aligned[31:8]}
                + {24'd0, round_up(acc_aligned[8], acc_aligned[7], |acc_aligned[6:0])};
            wire        acc_carry   = acc_rounded[24];   // rounded up to the next power of 2
            wire [7:0]  multiplier_exponent = multiplier[30:23];
            // value = significand * 2^exponent; exponent = (8 - zeros + carry) + (e - 150)
            wire signed [9:0] exponent = $signed({2'b0, multiplier_exponent})
                - $signed({4'b0, acc_zeros}) + $signed({9'b0, acc_carry}) - 10'sd142;

            reg               s1_zero, s1_negative;
            reg [23:0]        s1_acc_significand, s1_multiplier_significand;
            reg signed [9:0]  s1_exponent;
            always @(posedge clk) begin
                // acc = 0 has no leading one to normalize; a zero or subnormal multiplier
                // needs no such flag: read as 1.f * 2^-150, its product with |acc| <= 2^31
                // is below 2^-95 and vanishes in stage 4, as the true product does.
                s1_zero     <= acc_magnitude == 32'd0;
                s1_negative <= acc[31] ^ multiplier[31];
                s1_acc_significand <= acc_carry ? 24'h80_0000 : acc_rounded[23:0];
                s1_multiplier_significand <= {1'b1, multiplier[22:0]};
                s1_exponent <= exponent;
            end

            // -- 2 MULTIPLY: both significands have bit 23 set, so bit 47 or 46 leads -------
            reg               s2_zero, s2_negative;
            reg [47:0]        s2_product;
            reg signed [9:0]  s2_exponent;
            always @(posedge clk) begin
                s2_zero     <= s1_zero;
                s2_negative <= s1_negative;
                s2_product  <= s1_acc_significand * s1_multiplier_significand;
                s2_exponent <= s1_exponent;
            end

            // -- 3 ROUND: the float32 product, product_significand * 2^product_exponent -----
            wire        top_bit   = s2_product[47];
            wire [23:0] kept      = top_bit ? s2_product[47:24] : s2_product[46:23];
            wire        half      = top_bit ? s2_product[23] : s2_product[22];
            wire        sticky    = top_bit ? |s2_product[22:0] : |s2_product[21:0];
            wire [24:0] product_rounded = {1'b0, kept} + {24'd0, round_up(kept[0], half, sticky)};
            wire        product_carry   = product_rounded[24];

            reg               s3_zero, s3_negative;
            reg [23:0]        s3_significand;
            reg signed [9:0]  s3_exponent;
            always @(posedge clk) begin
                s3_zero        <= s2_zero;
                s3_negative    <= s2_negative;
                s3_significand <= product_carry ? 24'h80_0000 : product_rounded[23:0];
                s3_exponent    <= s2_exponent + 10'sd23 + $signed({9'b0, top_bit})
                                  + $signed({9'b0, product_carry});
            end

            // -- 4 INTEGER: round significand * 2^exponent to an integer, ties to even ------
            // exponent >= 0: the value is at least 2^23 (saturates); exponent < -24: it is
            // below 0.5 (rounds to 0); otherwise it is shifted right by 1..24 bits, its
            // integer part landing in bits 47..24 and its fraction in bits 23..0.
            wire        saturates   = !s3_exponent[9];
            wire        vanishes    = s3_exponent < -10'sd24;
            wire [4:0]  right_shift = 5'd0 - s3_exponent[4:0];   // 1..24 where used
            wire [47:0] fixed_point = {s3_significand, 24'd0} >> right_shift;
            wire [24:0] integer_rounded = {1'b0, fixed_point[47:24]}
                + {24'd0, round_up(fixed_point[24], fixed_point[23], |fixed_point[22:0])};
            wire [9:0]  magnitude =
                s3_zero || vanishes                      ? 10'd0 :
                saturates || integer_rounded > 25'd1023  ? MAGNITUDE_MAX :
                                                           integer_rounded[9:0];

            reg signed [10:0] s4_value;
            always @(posedge clk)
                s4_value <= s3_negative ? -$signed({1'b0, magnitude}) : $signed({1'b0, magnitude});

            // -- 5 ACTIVATE: zero point, saturation to the output type, then the clamp ------
            // Every value here lies in -256..255 (11-bit value + 9-bit zero point before the
            // saturation); the low 8 bits are the int8/uint8 result.
            wire signed [11:0] shifted   = {s4_value[10], s4_value} + zero_point;
            wire signed [11:0] saturated = shifted < out_low  ? out_low
                                         : shifted > out_high ? out_high : shifted;
            wire signed [11:0] raised    = saturated < qmin ? qmin : saturated;
            wire signed [11:0] clamped   = raised > qmax ? qmax : raised;

            reg [7:0] s5_result;
            always @(posedge clk) s5_result <= clamped[7:0];
            assign o_result[lane*8 +: 8] = s5_result;
        end
    endgenerate
endmodule

`default_nettype wire
