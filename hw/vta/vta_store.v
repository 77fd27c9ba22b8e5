// vta_store: the store module. Runs STORE instructions in order: ACC elements sram_base ..
// sram_base + y_size*x_size - 1, row after row, leave as their lanes' low 8 bits (no
// saturation, docs/vta-isa.md "STORE") to DRAM rows (dram_base + y * x_stride). pop_prev
// takes a compute->store token first; push_prev gives a store->compute token when the last
// beat has left.
//
//     store queue --> vta_dispatch --> rows: write requests ----------------> memory
//                        ^ C2S  | S2C   elements: ACC read --> 2-entry FIFO --> vta_pack --^
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
    wire [15:0] sram_base = i_insn[`VTA_MEM_SRAM_BASE];

    // -- request side: one write request per row -------------------------------------------
    reg [15:0]   req_row;
    reg [63:0]   req_addr;
    reg [RW-1:0] ahead;                  // rows requested whose last beat has not left
    wire [31:0] row_bytes = {16'd0, x_size} * OUT_BYTES;
    assign o_req_valid = busy && req_row != y_size && ahead != MAX_ROWS_AHEAD[RW-1:0];
    assign o_req_addr  = req_addr;
    assign o_req_beats = (row_bytes + PORT_BYTES - 1) / PORT_BYTES;
    wire requested = o_req_valid && i_req_ready;

    // -- data side: ACC reads into a small FIFO, narrowed, packed into beats ---------------
    reg [31:0]       elems_left;        // ACC elements not yet read
    reg [15:0]       col;               // position in the row of the next element read
    reg [ACC_AW-1:0] raddr;
    reg              inflight, inflight_last;
    reg [15:0]       rows_sent;
    wire             fifo_empty;
    wire [1:0]       fifo_count;
    wire [OUT_BYTES*8:0] fifo_head;
    wire             pack_ready, beat_last, unused_full;

    wire issue = busy && elems_left != 0 && {1'b0, fifo_count} + {1'b0, 1'b0, inflight} < 3'd2;
    wire take  = !fifo_empty && pack_ready;

    reg [OUT_BYTES*8-1:0] narrowed;
    integer lane;
    always @* begin
        for (lane = 0; lane < LANES; lane = lane + 1)
            narrowed[lane*8 +: 8] = i_acc_rdata[lane*32 +: 8];
    end

    vta_fifo #(.WIDTH(OUT_BYTES * 8 + 1), .DEPTH(2)) elems (
        .clk(clk), .rst(rst || start), .i_push(inflight), .i_wdata({inflight_last, narrowed}),
        .i_pop(take), .o_rdata(fifo_head), .o_empty(fifo_empty), .o_full(unused_full),
        .o_count(fifo_count));

    vta_pack #(.PORT_BYTES(PORT_BYTES), .ELEM_BYTES(OUT_BYTES)) pack (
        .clk(clk), .rst(rst), .i_elem_valid(!fifo_empty), .o_elem_ready(pack_ready),
        .i_elem(fifo_head[OUT_BYTES*8-1:0]), .i_elem_last(fifo_head[OUT_BYTES*8]),
        .o_beat_valid(o_wr_valid), .i_beat_ready(i_wr_ready), .o_beat(o_wr_data),
        .o_strb(o_wr_strb), .o_beat_last(beat_last));

    wire row_sent = o_wr_valid && i_wr_ready && beat_last;
    assign o_acc_re      = issue;
    assign o_acc_raddr   = raddr;
    assign o_elem_stored = take;

    always @(posedge clk) begin
        if (rst) begin
            busy     <= 1'b0;
            inflight <= 1'b0;
        end else if (start) begin
            busy       <= i_insn[`VTA_MEM_X_SIZE] != 16'd0 && i_insn[`VTA_MEM_Y_SIZE] != 16'd0;
            y_size     <= i_insn[`VTA_MEM_Y_SIZE];
            x_size     <= i_insn[`VTA_MEM_X_SIZE];
            x_stride   <= i_insn[`VTA_MEM_X_STRIDE];
            req_row    <= 16'd0;
            req_addr   <= {32'd0, i_insn[`VTA_MEM_DRAM_BASE]} * OUT_BYTES;
            ahead      <= {RW{1'b0}};
            elems_left <= {16'd0, i_insn[`VTA_MEM_Y_SIZE]} * {16'd0, i_insn[`VTA_MEM_X_SIZE]};
            col        <= 16'd0;
            raddr      <= sram_base[ACC_AW-1:0];
            rows_sent  <= 16'd0;
            inflight   <= 1'b0;
        end else begin
            inflight      <= issue;
            inflight_last <= col + 16'd1 == x_size;
            if (issue) begin
                raddr      <= raddr + 1'b1;
                elems_left <= elems_left - 32'd1;
                col        <= col + 16'd1 == x_size ? 16'd0 : col + 16'd1;
            end
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
