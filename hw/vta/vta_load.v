// vta_load: the load module. Runs LOAD INP and LOAD WGT instructions in order, each as a DMA
// from DRAM into the input or weight buffer (vta_loader), synchronised with the compute module
// by tokens: pop_next takes a compute->load token before the load starts, push_next gives
// a load->compute token when its last element is in the buffer.
//
//     load queue --> vta_dispatch --> start --> vta_loader (INP) --> INP buffer write port
//                        ^ C2L    | L2C  \----> vta_loader (WGT) --> WGT buffer write port
//                                                     \--- one memory client, by memory type
`default_nettype none
`include "vta_config.vh"

module vta_load #(
    parameter integer PORT_BYTES = 16,
    parameter integer INP_ELEM_BYTES = 16,
    parameter integer WGT_ELEM_BYTES = 256,
    parameter integer INP_DEPTH = 2048,
    parameter integer WGT_DEPTH = 1024
) (
    input  wire                      clk,
    input  wire                      rst,
    // instruction queue
    input  wire                      i_empty,
    input  wire [127:0]              i_insn,
    input  wire [31:0]               i_index,
    output wire                      o_dequeue,
    // tokens
    input  wire                      i_c2l_token,
    output wire                      o_pop_c2l,
    output wire                      o_push_l2c,
    // memory client
    output wire                      o_req_valid,
    input  wire                      i_req_ready,
    output wire [63:0]               o_req_addr,
    output wire [31:0]               o_req_beats,
    input  wire                      i_rd_valid,
    output wire                      o_rd_ready,
    input  wire [PORT_BYTES*8-1:0]   i_rd_data,
    // buffers
    output wire                      o_inp_we,
    output wire [INP_AW-1:0]         o_inp_waddr,
    output wire [INP_ELEM_BYTES*8-1:0] o_inp_wdata,
    output wire                      o_wgt_we,
    output wire [WGT_AW-1:0]         o_wgt_waddr,
    output wire [WGT_ELEM_BYTES*8-1:0] o_wgt_wdata,
    // status and counters
    output wire                      o_retired,
    output wire                      o_inp_elem_loaded,
    output wire                      o_wgt_elem_loaded,
    output wire [1:0]                o_state,
    output wire [31:0]               o_index,
    output wire                      o_wait_c2l
);
    localparam integer INP_AW = INP_DEPTH > 1 ? $clog2(INP_DEPTH) : 1;
    localparam integer WGT_AW = WGT_DEPTH > 1 ? $clog2(WGT_DEPTH) : 1;

    wire exec_busy;
    wire start;
    wire unused_prev, unused_pop_prev, unused_push_prev;   // the load module has no "prev"

    vta_dispatch dispatch (
        .clk(clk), .rst(rst), .i_empty(i_empty), .i_head(i_insn), .i_head_index(i_index),
        .i_prev_token(1'b0), .i_next_token(i_c2l_token), .i_exec_busy(exec_busy),
        .o_start(start), .o_pop_prev(unused_pop_prev), .o_pop_next(o_pop_c2l), .o_push_prev(unused_push_prev),
        .o_push_next(o_push_l2c), .o_retired(o_retired), .o_state(o_state), .o_index(o_index),
        .o_missing_prev(unused_prev), .o_missing_next(o_wait_c2l));
    assign o_dequeue = start;

    // The memory type of the running instruction selects the loader on the memory port.
    reg is_wgt;
    always @(posedge clk) if (start) is_wgt <= i_insn[`VTA_MEM_MEMORY_TYPE] == `VTA_MEM_WGT;
    wire start_wgt = start && i_insn[`VTA_MEM_MEMORY_TYPE] == `VTA_MEM_WGT;
    wire start_inp = start && !start_wgt;

    wire        inp_req_valid, wgt_req_valid, inp_rd_ready, wgt_rd_ready, inp_busy, wgt_busy;
    wire [63:0] inp_req_addr, wgt_req_addr;
    wire [31:0] inp_req_beats, wgt_req_beats;

    vta_loader #(.PORT_BYTES(PORT_BYTES), .ELEM_BYTES(INP_ELEM_BYTES), .DEPTH(INP_DEPTH)) inp (
        .clk(clk), .rst(rst), .i_start(start_inp),
        .i_insn(i_insn), .o_busy(inp_busy), .o_req_valid(inp_req_valid), .i_req_ready(i_req_ready && !is_wgt),
        .o_req_addr(inp_req_addr), .o_req_beats(inp_req_beats),
        .i_rd_valid(i_rd_valid && !is_wgt), .o_rd_ready(inp_rd_ready), .i_rd_data(i_rd_data),
        .o_we(o_inp_we), .o_waddr(o_inp_waddr), .o_wdata(o_inp_wdata),
        .o_data_written(o_inp_elem_loaded));

    vta_loader #(.PORT_BYTES(PORT_BYTES), .ELEM_BYTES(WGT_ELEM_BYTES), .DEPTH(WGT_DEPTH)) wgt (
        .clk(clk), .rst(rst), .i_start(start_wgt),
        .i_insn(i_insn), .o_busy(wgt_busy), .o_req_valid(wgt_req_valid), .i_req_ready(i_req_ready && is_wgt),
        .o_req_addr(wgt_req_addr), .o_req_beats(wgt_req_beats),
        .i_rd_valid(i_rd_valid && is_wgt), .o_rd_ready(wgt_rd_ready), .i_rd_data(i_rd_data),
        .o_we(o_wgt_we), .o_waddr(o_wgt_waddr), .o_wdata(o_wgt_wdata),
        .o_data_written(o_wgt_elem_loaded));

    assign exec_busy   = inp_busy || wgt_busy;
    assign o_req_valid = is_wgt ? wgt_req_valid : inp_req_valid;
    assign o_req_addr  = is_wgt ? wgt_req_addr : inp_req_addr;
    assign o_req_beats = is_wgt ? wgt_req_beats : inp_req_beats;
    assign o_rd_ready  = is_wgt ? wgt_rd_ready : inp_rd_ready;
endmodule

`default_nettype wire
