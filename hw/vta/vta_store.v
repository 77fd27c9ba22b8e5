// vta_store: the store module. Runs STORE instructions in order: ACC elements sram_base ..
// sram_base + y_size*x_size - 1, row after row, leave as one byte per lane to DRAM rows
// (dram_base + y * x_stride): the lane requantized by the three ACC elements at param_base
// (requantize = 1), or its low 8 bits (docs/vta-isa.md "STORE"). pop_prev takes a
// compute->store token first; push_prev gives a store->compute token when the last beat has
// left.
//
//     store queue --> vta_dispatch --> rows: write requests -------------------> memory
//                        ^ C2S  | S2C                                                ^ beats
//     ACC reads: parameters, then elements --> vta_requant --> FIFO --> vta_pack ---+
//
// The store reads ACC through its own read port (its copy of the accumulator, vta_core.v);
// the tokens order its reads after the compute module's writes. A requantizing STORE first
// reads its three parameter elements into vta_requant, one per cycle, then its elements.
// An element is read from ACC (cycle 0), passes vta_requant's three stages (cycles 1-3), and
// enters the FIFO at the end of cycle 4; vta_pack can take it in cycle 5, which frees its
// place for a read in cycle 6. Reads stop while elements read and not yet taken fill the FIFO,
// so with FIFO_DEPTH = 6 the store reads, and vta_pack takes, one element per cycle.
`default_nettype none
`include "vta_config.vh"

module vta_store #(
    parameter integer PORT_BYTES = 16,
    parameter integer LANES = 16,              // batch * block_out
    parameter integer ACC_DEPTH = 2048,
    parameter integer MAX_ROWS_AHEAD = 16
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    i_empty,
    input  wire [127:0]            i_insn,
    input  wire [31:0]             i_index,
    output wire                    o_dequeue,
    input  wire                    i_c2s_token,
    output wire                    o_pop_c2s,
    output wire                    o_push_s2c,
    // memory client (write only)
    output wire                    o_req_valid,
    input  wire                    i_req_ready,
    output wire [63:0]             o_req_addr,
    output wire [31:0]             o_req_beats,
    output wire                    o_wr_valid,
    input  wire                    i_wr_ready,
    output wire [PORT_BYTES*8-1:0] o_wr_data,
    output wire [PORT_BYTES-1:0]   o_wr_strb,
    // accumulator read port (registered read)
    output wire                    o_acc_re,
    output wire [ACC_AW-1:0]       o_acc_raddr,
    input  wire [LANES*32-1:0]     i_acc_rdata,
    // status and counters
    output wire                    o_retired,
    output wire                    o_elem_stored,
    output wire [1:0]              o_state,
    output wire [31:0]             o_index,
    output wire                    o_wait_c2s
);
    localparam integer ACC_AW = ACC_DEPTH > 1 ? $clog2(ACC_DEPTH) : 1;
    localparam integer OUT_BYTES = LANES;
    localparam integer RW = $clog2(MAX_ROWS_AHEAD + 1);
    localparam integer FIFO_DEPTH = 6;         // cycles from an element's read to its place freed
    localparam integer QW = $clog2(FIFO_DEPTH + 1);
    localparam [1:0]   PARAM_ELEMENTS = 2'd3;  // bias, MULSHR operand, range

    wire start;
    reg  busy;
    wire unused_next, unused_pop_next, unused_push_next;   // the store module has no "next"

    vta_dispatch dispatch (
        .clk(clk), .rst(rst), .i_empty(i_empty), .i_head(i_insn), .i_head_index(i_index),
        .i_prev_token(i_c2s_token), .i_next_token(1'b0), .i_exec_busy(busy),
        .o_start(start), .o_pop_prev(o_pop_c2s), .o_pop_next(unused_pop_next),
        .o_push_prev(o_push_s2c), .o_push_next(unused_push_next), .o_retired(o_retired),
        .o_state(o_state), .o_index(o_index), .o_missing_prev(o_wait_c2s),
        .o_missing_next(unused_next));
    assign o_dequeue = start;

    reg [15:0] y_size, x_size, x_stride;
    wire [15:0] sram_base  = i_insn[`VTA_MEM_SRAM_BASE];
    wire [15:0] param_base = i_insn[`VTA_MEM_PARAM_BASE];
    wire        requantize = i_insn[`VTA_MEM_REQUANTIZE];

    // -- request side: one write request per row -------------------------------------------
    reg [15:0]   req_row;
    reg [63:0]   req_addr;
    reg [RW-1:0] ahead;                  // rows requested whose last beat has not left
    wire [31:0] row_bytes = {16'd0, x_size} * OUT_BYTES;
    assign o_req_valid = busy && req_row != y_size && ahead != MAX_ROWS_AHEAD[RW-1:0];
    assign o_req_addr  = req_addr;
    assign o_req_beats = (row_bytes + PORT_BYTES - 1) / PORT_BYTES;
    wire requested = o_req_valid && i_req_ready;

    // -- data side: parameters, then elements, read from ACC; requantized, queued, packed --
    reg [1:0]        params_read;       // PARAM_ELEMENTS from the start of a plain STORE
    reg [ACC_AW-1:0] param_raddr;
    reg              param_arrives;
    reg [1:0]        param_index;
    reg [31:0]       elems_left;        // ACC elements not yet read
    reg [15:0]       col;               // position in the row of the next element read
    reg [ACC_AW-1:0] raddr;
    reg              inflight, inflight_last;
    reg [QW-1:0]     queued;            // elements read and not yet taken by vta_pack
    reg [15:0]       rows_sent;
    wire             requant_valid, requant_last, fifo_empty, unused_full;
    wire [OUT_BYTES*8-1:0] requant_bytes;
    wire [OUT_BYTES*8:0]   fifo_head;
    wire [$clog2(FIFO_DEPTH):0] unused_count;
    wire             pack_ready, beat_last;

    wire read_param = busy && params_read != PARAM_ELEMENTS;
    wire issue = busy && !read_param && elems_left != 0 && queued != FIFO_DEPTH[QW-1:0];
    wire take  = !fifo_empty && pack_ready;

    vta_requant #(.LANES(LANES)) requant (
        .clk(clk), .rst(rst), .i_start(start), .i_requantize(requantize),
        .i_param_valid(param_arrives), .i_param_index(param_index), .i_param(i_acc_rdata),
        .i_valid(inflight), .i_last(inflight_last), .i_acc(i_acc_rdata),
        .o_valid(requant_valid), .o_last(requant_last), .o_bytes(requant_bytes));

    vta_fifo #(.WIDTH(OUT_BYTES * 8 + 1), .DEPTH(FIFO_DEPTH)) elems (
        .clk(clk), .rst(rst || start), .i_push(requant_valid),
        .i_wdata({requant_last, requant_bytes}), .i_pop(take), .o_rdata(fifo_head),
        .o_empty(fifo_empty), .o_full(unused_full), .o_count(unused_count));

    vta_pack #(.PORT_BYTES(PORT_BYTES), .ELEM_BYTES(OUT_BYTES)) pack (
        .clk(clk), .rst(rst), .i_elem_valid(!fifo_empty), .o_elem_ready(pack_ready),
        .i_elem(fifo_head[OUT_BYTES*8-1:0]), .i_elem_last(fifo_head[OUT_BYTES*8]),
        .o_beat_valid(o_wr_valid), .i_beat_ready(i_wr_ready), .o_beat(o_wr_data),
        .o_strb(o_wr_strb), .o_beat_last(beat_last));

    wire row_sent = o_wr_valid && i_wr_ready && beat_last;
    assign o_acc_re      = read_param || issue;
    assign o_acc_raddr   = read_param ? param_raddr : raddr;
    assign o_elem_stored = take;

    always @(posedge clk) begin
        if (rst) begin
            busy          <= 1'b0;
            inflight      <= 1'b0;
            param_arrives <= 1'b0;
            queued        <= {QW{1'b0}};
        end else if (start) begin
            busy          <= i_insn[`VTA_MEM_X_SIZE] != 16'd0 && i_insn[`VTA_MEM_Y_SIZE] != 16'd0;
            y_size        <= i_insn[`VTA_MEM_Y_SIZE];
            x_size        <= i_insn[`VTA_MEM_X_SIZE];
            x_stride      <= i_insn[`VTA_MEM_X_STRIDE];
            req_row       <= 16'd0;
            req_addr      <= {32'd0, i_insn[`VTA_MEM_DRAM_BASE]} * OUT_BYTES;
            ahead         <= {RW{1'b0}};
            params_read   <= requantize ? 2'd0 : PARAM_ELEMENTS;
            param_raddr   <= param_base[ACC_AW-1:0];
            elems_left    <= {16'd0, i_insn[`VTA_MEM_Y_SIZE]} * {16'd0, i_insn[`VTA_MEM_X_SIZE]};
            col           <= 16'd0;
            raddr         <= sram_base[ACC_AW-1:0];
            rows_sent     <= 16'd0;
            param_arrives <= 1'b0;
            inflight      <= 1'b0;
            queued        <= {QW{1'b0}};
        end else begin
            param_arrives <= read_param;
            param_index   <= params_read;
            if (read_param) begin
                params_read <= params_read + 2'd1;
                param_raddr <= param_raddr + 1'b1;
            end
            inflight      <= issue;
            inflight_last <= col + 16'd1 == x_size;
            if (issue) begin
                raddr      <= raddr + 1'b1;
                elems_left <= elems_left - 32'd1;
                col        <= col + 16'd1 == x_size ? 16'd0 : col + 16'd1;
            end
            queued <= queued + {{(QW - 1){1'b0}}, issue} - {{(QW - 1){1'b0}}, take};
            if (requested) begin
                req_row  <= req_row + 16'd1;
                req_addr <= req_addr + {48'd0, x_stride} * OUT_BYTES;
            end
            ahead <= ahead + {{(RW - 1){1'b0}}, requested} - {{(RW - 1){1'b0}}, row_sent};
            if (row_sent) begin
                rows_sent <= rows_sent + 16'd1;
                if (rows_sent + 16'd1 == y_size) busy <= 1'b0;
            end
        end
    end
endmodule

`default_nettype wire
