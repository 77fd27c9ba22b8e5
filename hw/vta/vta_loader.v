// vta_loader: the DMA of one LOAD instruction into one on-chip buffer.
//
// Semantics (docs/vta-isa.md, "LOAD"): with row_width = x_pad_0 + x_size + x_pad_1, the
// buffer region from sram_base receives y_pad_0 zero rows, then y_size rows of x_pad_0
// zeros, x_size elements read from DRAM at (dram_base + y * x_stride) and x_pad_1 zeros,
// then y_pad_1 zero rows. x_size = 0 writes nothing.
//
//     request side                           write side
//     rows y = 0 .. y_size-1  --> memory --> vta_unpack --> zeros / data, one element per
//     (at most MAX_ROWS_AHEAD rows                          cycle, to sram_base, +1, +2 ...
//      requested and not yet written)
//
// The request side asks for whole rows (ceil(x_size * ELEM_BYTES / PORT_BYTES) beats each)
// ahead of the write side, so the memory latency of a row hides behind the rows before it.
`default_nettype none
`include "vta_config.vh"

module vta_loader #(
    parameter integer PORT_BYTES = 16,
    parameter integer ELEM_BYTES = 16,
    parameter integer DEPTH = 2048,
    parameter integer MAX_ROWS_AHEAD = 16
) (
    input  wire                    clk,
    input  wire                    rst,
    // the LOAD instruction, valid with i_start (one cycle)
    input  wire                    i_start,
    input  wire [127:0]            i_insn,
    output wire                    o_busy,
    // memory client (read only)
    output wire                    o_req_valid,
    input  wire                    i_req_ready,
    output wire [63:0]             o_req_addr,
    output wire [31:0]             o_req_beats,
    input  wire                    i_rd_valid,
    output wire                    o_rd_ready,
    input  wire [PORT_BYTES*8-1:0] i_rd_data,
    // buffer write port
    output wire                    o_we,
    output wire [AW-1:0]           o_waddr,
    output wire [ELEM_BYTES*8-1:0] o_wdata,
    output wire                    o_data_written   // the element written came from DRAM
);
    localparam integer AW = DEPTH > 1 ? $clog2(DEPTH) : 1;
    localparam integer RW = $clog2(MAX_ROWS_AHEAD + 1);

    // -- the instruction, held while it runs ---------------------------------------------
    reg        busy;
    reg [15:0] y_size, x_size, x_stride;
    reg [15:0] y_data_bgn, y_data_end, x_data_bgn, x_data_end;   // data window
    reg [15:0] rows, row_width;

    // -- request side ---------------------------------------------------------------------
    reg [15:0]   req_row;                 // next row to request
    reg [63:0]   req_addr;
    reg [RW-1:0] ahead;                   // rows requested whose last element is not written

    wire [31:0] row_bytes = {16'd0, x_size} * ELEM_BYTES;
    assign o_req_valid = busy && req_row != y_size && ahead != MAX_ROWS_AHEAD[RW-1:0];
    assign o_req_addr  = req_addr;
    assign o_req_beats = (row_bytes + PORT_BYTES - 1) / PORT_BYTES;
    wire requested = o_req_valid && i_req_ready;

    // -- write side -----------------------------------------------------------------------
    reg [15:0]   row, col;
    reg [AW-1:0] waddr;
    wire         elem_valid;
    wire [ELEM_BYTES*8-1:0] elem;

    wire in_data = row >= y_data_bgn && row < y_data_end && col >= x_data_bgn && col < x_data_end;
    wire writing = busy && (!in_data || elem_valid);
    wire last_col = col + 16'd1 == row_width;
    wire last = writing && last_col && row + 16'd1 == rows;
    wire row_written = writing && in_data && col + 16'd1 == x_data_end;

    vta_unpack #(.PORT_BYTES(PORT_BYTES), .ELEM_BYTES(ELEM_BYTES)) unpack (
        .clk(clk), .rst(rst), .i_clear(i_start), .i_row_elems(x_size),
        .i_beat_valid(i_rd_valid), .o_beat_ready(o_rd_ready), .i_beat(i_rd_data),
        .o_elem_valid(elem_valid), .i_elem_ready(busy && in_data), .o_elem(elem));

    assign o_we           = writing;
    assign o_waddr        = waddr;
    assign o_wdata        = in_data ? elem : {ELEM_BYTES*8{1'b0}};
    assign o_data_written = writing && in_data;
    assign o_busy         = busy;

    wire [15:0] insn_sram_base = i_insn[`VTA_MEM_SRAM_BASE];
    wire [31:0] insn_dram_base = i_insn[`VTA_MEM_DRAM_BASE];
    wire [15:0] insn_y_size    = i_insn[`VTA_MEM_Y_SIZE];
    wire [15:0] insn_x_size    = i_insn[`VTA_MEM_X_SIZE];
    wire [15:0] insn_x_stride  = i_insn[`VTA_MEM_X_STRIDE];
    wire [3:0]  insn_y_pad_0   = i_insn[`VTA_MEM_Y_PAD_0];
    wire [3:0]  insn_y_pad_1   = i_insn[`VTA_MEM_Y_PAD_1];
    wire [3:0]  insn_x_pad_0   = i_insn[`VTA_MEM_X_PAD_0];
    wire [3:0]  insn_x_pad_1   = i_insn[`VTA_MEM_X_PAD_1];
    wire unused_insn = ^{i_insn[63:58], i_insn[9:0]};   // header and memory type: the caller's

    wire [15:0] start_row_width = {12'd0, insn_x_pad_0} + insn_x_size + {12'd0, insn_x_pad_1};
    wire [15:0] start_rows      = {12'd0, insn_y_pad_0} + insn_y_size + {12'd0, insn_y_pad_1};

    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
        end else if (i_start) begin
            // x_size = 0 moves no data at all (only the instruction's tokens)
            busy       <= insn_x_size != 16'd0 && start_rows != 16'd0;
            y_size     <= insn_y_size;
            x_size     <= insn_x_size;
            x_stride   <= insn_x_stride;
            y_data_bgn <= {12'd0, insn_y_pad_0};
            y_data_end <= {12'd0, insn_y_pad_0} + insn_y_size;
            x_data_bgn <= {12'd0, insn_x_pad_0};
            x_data_end <= {12'd0, insn_x_pad_0} + insn_x_size;
            rows       <= start_rows;
            row_width  <= start_row_width;
            req_row    <= 16'd0;
            req_addr   <= {32'd0, insn_dram_base} * ELEM_BYTES;
            ahead      <= {RW{1'b0}};
            row        <= 16'd0;
            col        <= 16'd0;
            waddr      <= insn_sram_base[AW-1:0];
        end else if (busy) begin
            if (requested) begin
                req_row  <= req_row + 16'd1;
                req_addr <= req_addr + {48'd0, x_stride} * ELEM_BYTES;
            end
            ahead <= ahead + {{(RW - 1){1'b0}}, requested} - {{(RW - 1){1'b0}}, row_written};
            if (writing) begin
                waddr <= waddr + 1'b1;
                col   <= last_col ? 16'd0 : col + 16'd1;
                if (last_col) row <= row + 16'd1;
                if (last) busy <= 1'b0;
            end
        end
    end
endmodule

`default_nettype wire
