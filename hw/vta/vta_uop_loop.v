// vta_uop_loop: the loop nest of a GEMM or ALU instruction (docs/vta-isa.md, "GEMM"):
//
//     for i < iter_out, for j < iter_in, for u in [uop_bgn, uop_end):
//         dst = uop[u].dst + i*dst_factor_out + j*dst_factor_in      (likewise src, wgt)
//
// One micro-op per cycle in two stages: A reads uop[u] from the micro-op buffer (registered
// read) while the loop offsets advance; B adds the offsets to the micro-op's fields and
// presents (o_valid, o_dst, o_src, o_wgt). Indices are 16 bits wide; the buffers use their
// low bits. o_busy stays high until the last micro-op has left stage B.
`default_nettype none
`include "vta_config.vh"

module vta_uop_loop #(
    parameter integer UOP_DEPTH = 8192
) (
    input  wire              clk,
    input  wire              rst,
    input  wire              i_start,
    input  wire [127:0]      i_insn,         // GEMM or ALU (ALU's wgt factors read as 0)
    input  wire              i_is_gemm,
    output wire              o_busy,
    output wire              o_uop_re,
    output wire [UOP_AW-1:0] o_uop_raddr,
    input  wire [31:0]       i_uop_rdata,
    output reg               o_valid,
    output wire [15:0]       o_dst,
    output wire [15:0]       o_src,
    output wire [15:0]       o_wgt
);
    localparam integer UOP_AW = UOP_DEPTH > 1 ? $clog2(UOP_DEPTH) : 1;

    reg        active;                               // stage A issues this cycle
    reg [13:0] uop_bgn, uop_end, u;
    reg [13:0] iter_out, iter_in, i, j;
    reg [15:0] dst_out, dst_in, src_out, src_in, wgt_out, wgt_in;   // factors
    reg [15:0] dst_i, src_i, wgt_i;                  // offsets at (i, 0)
    reg [15:0] dst_ij, src_ij, wgt_ij;               // offsets at (i, j)
    reg [15:0] dst_b, src_b, wgt_b;                  // stage B's offsets

    wire unused_insn = ^{i_insn[63], i_insn[7:0]};   // header, reset, overwrite: vta_compute's

    wire last_u = u + 14'd1 == uop_end;
    wire last_j = j + 14'd1 == iter_in;
    wire last_i = i + 14'd1 == iter_out;

    wire [13:0] start_bgn = {1'b0, i_insn[`VTA_GEMM_UOP_BGN]};
    wire [13:0] start_end = i_insn[`VTA_GEMM_UOP_END];
    wire        start_work = start_end > start_bgn && i_insn[`VTA_GEMM_ITER_OUT] != 14'd0
                             && i_insn[`VTA_GEMM_ITER_IN] != 14'd0;

    always @(posedge clk) begin
        if (rst) begin
            active  <= 1'b0;
            o_valid <= 1'b0;
        end else begin
            o_valid <= active;
            dst_b   <= dst_ij;
            src_b   <= src_ij;
            wgt_b   <= wgt_ij;
            if (i_start) begin
                active   <= start_work;
                uop_bgn  <= start_bgn;
                uop_end  <= start_end;
                u        <= start_bgn;
                iter_out <= i_insn[`VTA_GEMM_ITER_OUT];
                iter_in  <= i_insn[`VTA_GEMM_ITER_IN];
                i        <= 14'd0;
                j        <= 14'd0;
                dst_out  <= {5'd0, i_insn[`VTA_GEMM_DST_FACTOR_OUT]};
                dst_in   <= {5'd0, i_insn[`VTA_GEMM_DST_FACTOR_IN]};
                src_out  <= {5'd0, i_insn[`VTA_GEMM_SRC_FACTOR_OUT]};
                src_in   <= {5'd0, i_insn[`VTA_GEMM_SRC_FACTOR_IN]};
                wgt_out  <= i_is_gemm ? {6'd0, i_insn[`VTA_GEMM_WGT_FACTOR_OUT]} : 16'd0;
                wgt_in   <= i_is_gemm ? {6'd0, i_insn[`VTA_GEMM_WGT_FACTOR_IN]} : 16'd0;
                {dst_i, src_i, wgt_i}    <= 48'd0;
                {dst_ij, src_ij, wgt_ij} <= 48'd0;
            end else if (active) begin
                u <= last_u ? uop_bgn : u + 14'd1;
                if (last_u) begin
                    j <= last_j ? 14'd0 : j + 14'd1;
                    if (last_j) begin
                        i      <= i + 14'd1;
                        dst_i  <= dst_i + dst_out;
                        src_i  <= src_i + src_out;
                        wgt_i  <= wgt_i + wgt_out;
                        dst_ij <= dst_i + dst_out;
                        src_ij <= src_i + src_out;
                        wgt_ij <= wgt_i + wgt_out;
                        if (last_i) active <= 1'b0;
                    end else begin
                        dst_ij <= dst_ij + dst_in;
                        src_ij <= src_ij + src_in;
                        wgt_ij <= wgt_ij + wgt_in;
                    end
                end
            end
        end
    end

    assign o_uop_re    = active;
    assign o_uop_raddr = u[UOP_AW-1:0];
    assign o_busy = active || o_valid;
    assign o_dst = {5'd0, i_uop_rdata[`VTA_UOP_DST]} + dst_b;
    assign o_src = {5'd0, i_uop_rdata[`VTA_UOP_SRC]} + src_b;
    assign o_wgt = {6'd0, i_uop_rdata[`VTA_UOP_WGT]} + wgt_b;
endmodule

`default_nettype wire
