// vta_core: the VTA-like int8 accelerator (docs/vta-isa.md is its specification; the
// functional simulator byoc_vta_sim.sim is the reference it is tested against).
//
//                 +-------+  load queue   +------+  INP, WGT buffers  +---------+
//   DRAM port <-> | fetch |-------------->| load |------------------->|         |
//      ^          |       |  compute queue       L2C ->  <- C2L       | compute |--> ACC
//      |          |       |---------------------------------------->  |  GEMM   |  buffer
//      |          |       |  store queue  +-------+   C2S ->  <- S2C  |  ALU    |  (3 read
//      |          |       |-------------->| store |<------------------|         |   copies)
//      |          +-------+               +-------+   ACC reads       +---------+
//      |              |                       |                          |
//      +---- vta_mem_arbiter: fetch (0), load (1), compute (2), store (3) -+
//
// The modules run concurrently and synchronise only through the four token queues. Every
// parameter comes from vta_config.vh, generated from the vta_sim configuration. The
// register map is in vta_regs.v. The memory port is byte-addressed: a request asks for
// i_mem_req_beats consecutive beats of PORT_BYTES starting at any byte address; write beats
// carry byte strobes.
`default_nettype none
`include "vta_config.vh"

module vta_core (
    input  wire                    clk,
    input  wire                    rst,
    // control and status registers (vta_regs.v)
    input  wire                    i_reg_we,
    input  wire [4:0]              i_reg_addr,
    input  wire [63:0]             i_reg_wdata,
    output wire [63:0]             o_reg_rdata,
    output wire                    o_done,
    // memory port
    output wire                    o_mem_req_valid,
    input  wire                    i_mem_req_ready,
    output wire                    o_mem_req_write,
    output wire [63:0]             o_mem_req_addr,
    output wire [31:0]             o_mem_req_beats,
    output wire [1:0]              o_mem_req_id,
    input  wire                    i_mem_rd_valid,
    output wire                    o_mem_rd_ready,
    input  wire [PORT_BYTES*8-1:0] i_mem_rd_data,
    input  wire [1:0]              i_mem_rd_id,
    input  wire                    i_mem_wr_ready,
    input  wire [1:0]              i_mem_wr_id,
    output wire                    o_mem_wr_valid,
    output wire [PORT_BYTES*8-1:0] o_mem_wr_data,
    output wire [PORT_BYTES-1:0]   o_mem_wr_strb
);
    localparam integer PORT_BYTES = `VTA_MEM_PORT_BITS / 8;
    localparam integer BATCH = `VTA_BATCH;
    localparam integer BLOCK_IN = `VTA_BLOCK_IN;
    localparam integer BLOCK_OUT = `VTA_BLOCK_OUT;
    localparam integer UOP_DEPTH = `VTA_UOP_DEPTH;
    localparam integer INP_DEPTH = `VTA_INP_DEPTH;
    localparam integer WGT_DEPTH = `VTA_WGT_DEPTH;
    localparam integer ACC_DEPTH = `VTA_ACC_DEPTH;
    localparam integer QUEUE_DEPTH = `VTA_INSN_QUEUE_DEPTH;
    localparam integer LANES = BATCH * BLOCK_OUT;
    localparam integer INP_W = BATCH * BLOCK_IN * 8;
    localparam integer WGT_W = BLOCK_OUT * BLOCK_IN * 8;
    localparam integer ACC_W = LANES * 32;
    localparam integer UOP_AW = $clog2(UOP_DEPTH);
    localparam integer INP_AW = $clog2(INP_DEPTH);
    localparam integer WGT_AW = $clog2(WGT_DEPTH);
    localparam integer ACC_AW = $clog2(ACC_DEPTH);
    localparam integer QW = $clog2(QUEUE_DEPTH + 1);
    localparam integer PW = PORT_BYTES * 8;

    // -- registers ---------------------------------------------------------------------------
    wire        start, finished;
    wire [63:0] insn_addr;
    wire [31:0] insn_count;

    // -- fetch and the instruction queues ----------------------------------------------------
    wire [159:0] entry;
    wire push_load, push_compute, push_store;
    wire full_load, full_compute, full_store;
    wire empty_load, empty_compute, empty_store;
    wire deq_load, deq_compute, deq_store;
    wire [159:0] head_load, head_compute, head_store;
    wire [QW-1:0] unused_count_load, unused_count_compute, unused_count_store;
    wire [31:0] routed;
    wire        blocked;
    wire [1:0]  blocked_module;

    // memory clients, packed for the arbiter
    wire [3:0]       req_valid, req_ready, rd_valid, rd_ready, wr_valid, wr_ready;
    wire [4*64-1:0]  req_addr;
    wire [4*32-1:0]  req_beats;
    wire [PW-1:0]    rd_data;
    wire [PW-1:0]    store_wr_data;
    wire [PORT_BYTES-1:0] store_wr_strb;

    vta_fetch #(.PORT_BYTES(PORT_BYTES)) fetch (
        .clk(clk), .rst(rst), .i_start(start), .i_insn_addr(insn_addr),
        .i_insn_count(insn_count),
        .o_req_valid(req_valid[0]), .i_req_ready(req_ready[0]), .o_req_addr(req_addr[0*64 +: 64]),
        .o_req_beats(req_beats[0*32 +: 32]), .i_rd_valid(rd_valid[0]), .o_rd_ready(rd_ready[0]),
        .i_rd_data(rd_data), .o_entry(entry), .o_push_load(push_load),
        .o_push_compute(push_compute), .o_push_store(push_store), .i_full_load(full_load),
        .i_full_compute(full_compute), .i_full_store(full_store), .o_routed(routed),
        .o_blocked(blocked), .o_blocked_module(blocked_module));

    vta_fifo #(.WIDTH(160), .DEPTH(QUEUE_DEPTH)) load_queue (
        .clk(clk), .rst(rst || start), .i_push(push_load), .i_wdata(entry), .i_pop(deq_load),
        .o_rdata(head_load), .o_empty(empty_load), .o_full(full_load),
        .o_count(unused_count_load));
    vta_fifo #(.WIDTH(160), .DEPTH(QUEUE_DEPTH)) compute_queue (
        .clk(clk), .rst(rst || start), .i_push(push_compute), .i_wdata(entry),
        .i_pop(deq_compute), .o_rdata(head_compute), .o_empty(empty_compute),
        .o_full(full_compute), .o_count(unused_count_compute));
    vta_fifo #(.WIDTH(160), .DEPTH(QUEUE_DEPTH)) store_queue (
        .clk(clk), .rst(rst || start), .i_push(push_store), .i_wdata(entry), .i_pop(deq_store),
        .o_rdata(head_store), .o_empty(empty_store), .o_full(full_store),
        .o_count(unused_count_store));

    // -- token queues ------------------------------------------------------------------------
    wire [15:0] l2c, c2l, c2s, s2c;
    wire push_l2c, pop_l2c, push_c2l, pop_c2l, push_c2s, pop_c2s, push_s2c, pop_s2c;
    vta_token_queue q_l2c (.clk(clk), .rst(rst || start), .i_push(push_l2c), .i_pop(pop_l2c), .o_count(l2c));
    vta_token_queue q_c2l (.clk(clk), .rst(rst || start), .i_push(push_c2l), .i_pop(pop_c2l), .o_count(c2l));
    vta_token_queue q_c2s (.clk(clk), .rst(rst || start), .i_push(push_c2s), .i_pop(pop_c2s), .o_count(c2s));
    vta_token_queue q_s2c (.clk(clk), .rst(rst || start), .i_push(push_s2c), .i_pop(pop_s2c), .o_count(s2c));

    // -- buffers -----------------------------------------------------------------------------
    wire              inp_we, wgt_we, uop_we, acc_we;
    wire              inp_re, wgt_re, uop_re, acc_re_dst, acc_re_src, acc_re_store;
    wire [INP_AW-1:0] inp_waddr, inp_raddr;
    wire [WGT_AW-1:0] wgt_waddr, wgt_raddr;
    wire [UOP_AW-1:0] uop_waddr, uop_raddr;
    wire [ACC_AW-1:0] acc_waddr, acc_raddr_dst, acc_raddr_src, acc_raddr_store;
    wire [INP_W-1:0]  inp_wdata, inp_rdata;
    wire [WGT_W-1:0]  wgt_wdata, wgt_rdata;
    wire [31:0]       uop_wdata, uop_rdata;
    wire [ACC_W-1:0]  acc_wdata, acc_rdata_dst, acc_rdata_src, acc_rdata_store;

    vta_sram #(.WIDTH(INP_W), .DEPTH(INP_DEPTH)) inp_buffer (.clk(clk), .i_we(inp_we),
        .i_waddr(inp_waddr), .i_wdata(inp_wdata), .i_re(inp_re), .i_raddr(inp_raddr),
        .o_rdata(inp_rdata));
    vta_sram #(.WIDTH(WGT_W), .DEPTH(WGT_DEPTH)) wgt_buffer (.clk(clk), .i_we(wgt_we),
        .i_waddr(wgt_waddr), .i_wdata(wgt_wdata), .i_re(wgt_re), .i_raddr(wgt_raddr),
        .o_rdata(wgt_rdata));
    vta_sram #(.WIDTH(32), .DEPTH(UOP_DEPTH)) uop_buffer (.clk(clk), .i_we(uop_we),
        .i_waddr(uop_waddr), .i_wdata(uop_wdata), .i_re(uop_re), .i_raddr(uop_raddr),
        .o_rdata(uop_rdata));
    // The accumulator is read by three ports (GEMM/ALU dst, ALU src, store): three copies
    // written together.
    vta_sram #(.WIDTH(ACC_W), .DEPTH(ACC_DEPTH)) acc_dst (.clk(clk), .i_we(acc_we),
        .i_waddr(acc_waddr), .i_wdata(acc_wdata), .i_re(acc_re_dst), .i_raddr(acc_raddr_dst),
        .o_rdata(acc_rdata_dst));
    vta_sram #(.WIDTH(ACC_W), .DEPTH(ACC_DEPTH)) acc_src (.clk(clk), .i_we(acc_we),
        .i_waddr(acc_waddr), .i_wdata(acc_wdata), .i_re(acc_re_src), .i_raddr(acc_raddr_src),
        .o_rdata(acc_rdata_src));
    vta_sram #(.WIDTH(ACC_W), .DEPTH(ACC_DEPTH)) acc_store (.clk(clk), .i_we(acc_we),
        .i_waddr(acc_waddr), .i_wdata(acc_wdata), .i_re(acc_re_store),
        .i_raddr(acc_raddr_store), .o_rdata(acc_rdata_store));

    // -- modules -----------------------------------------------------------------------------
    wire retired_load, retired_compute, retired_store;
    wire inp_elem, wgt_elem, uop_elem, acc_elem, out_elem;
    wire gemm_uop, alu_uop, gemm_busy, alu_busy;
    wire wait_l2c, wait_c2l, wait_c2s, wait_s2c;
    wire [1:0]  state_load, state_compute, state_store;
    wire [31:0] index_load, index_compute, index_store;

    vta_load #(.PORT_BYTES(PORT_BYTES), .INP_ELEM_BYTES(INP_W / 8),
               .WGT_ELEM_BYTES(WGT_W / 8), .INP_DEPTH(INP_DEPTH), .WGT_DEPTH(WGT_DEPTH)) load (
        .clk(clk), .rst(rst), .i_empty(empty_load), .i_insn(head_load[127:0]),
        .i_index(head_load[159:128]), .o_dequeue(deq_load), .i_c2l_token(c2l != 16'd0),
        .o_pop_c2l(pop_c2l), .o_push_l2c(push_l2c),
        .o_req_valid(req_valid[1]), .i_req_ready(req_ready[1]), .o_req_addr(req_addr[1*64 +: 64]),
        .o_req_beats(req_beats[1*32 +: 32]), .i_rd_valid(rd_valid[1]), .o_rd_ready(rd_ready[1]),
        .i_rd_data(rd_data), .o_inp_we(inp_we), .o_inp_waddr(inp_waddr),
        .o_inp_wdata(inp_wdata), .o_wgt_we(wgt_we), .o_wgt_waddr(wgt_waddr),
        .o_wgt_wdata(wgt_wdata), .o_retired(retired_load), .o_inp_elem_loaded(inp_elem),
        .o_wgt_elem_loaded(wgt_elem), .o_state(state_load), .o_index(index_load),
        .o_wait_c2l(wait_c2l));

    vta_compute #(.PORT_BYTES(PORT_BYTES), .BATCH(BATCH), .BLOCK_IN(BLOCK_IN),
                  .BLOCK_OUT(BLOCK_OUT), .UOP_DEPTH(UOP_DEPTH), .INP_DEPTH(INP_DEPTH),
                  .WGT_DEPTH(WGT_DEPTH), .ACC_DEPTH(ACC_DEPTH)) compute (
        .clk(clk), .rst(rst || start), .i_empty(empty_compute), .i_insn(head_compute[127:0]),
        .i_index(head_compute[159:128]), .o_dequeue(deq_compute),
        .i_l2c_token(l2c != 16'd0), .i_s2c_token(s2c != 16'd0), .o_pop_l2c(pop_l2c),
        .o_pop_s2c(pop_s2c), .o_push_c2l(push_c2l), .o_push_c2s(push_c2s),
        .o_req_valid(req_valid[2]), .i_req_ready(req_ready[2]), .o_req_addr(req_addr[2*64 +: 64]),
        .o_req_beats(req_beats[2*32 +: 32]), .i_rd_valid(rd_valid[2]), .o_rd_ready(rd_ready[2]),
        .i_rd_data(rd_data), .o_uop_we(uop_we), .o_uop_waddr(uop_waddr),
        .o_uop_wdata(uop_wdata), .o_uop_re(uop_re), .o_uop_raddr(uop_raddr),
        .i_uop_rdata(uop_rdata), .o_inp_re(inp_re), .o_inp_raddr(inp_raddr),
        .i_inp_rdata(inp_rdata), .o_wgt_re(wgt_re), .o_wgt_raddr(wgt_raddr),
        .i_wgt_rdata(wgt_rdata), .o_acc_we(acc_we), .o_acc_waddr(acc_waddr),
        .o_acc_wdata(acc_wdata), .o_acc_re_dst(acc_re_dst),
        .o_acc_raddr_dst(acc_raddr_dst), .i_acc_rdata_dst(acc_rdata_dst),
        .o_acc_re_src(acc_re_src), .o_acc_raddr_src(acc_raddr_src),
        .i_acc_rdata_src(acc_rdata_src), .o_retired(retired_compute), .o_finished(finished),
        .o_uop_elem_loaded(uop_elem), .o_acc_elem_loaded(acc_elem), .o_gemm_uop(gemm_uop),
        .o_alu_uop(alu_uop), .o_gemm_busy(gemm_busy), .o_alu_busy(alu_busy),
        .o_state(state_compute), .o_index(index_compute), .o_wait_l2c(wait_l2c),
        .o_wait_s2c(wait_s2c));

    vta_store #(.PORT_BYTES(PORT_BYTES), .LANES(LANES), .ACC_DEPTH(ACC_DEPTH)) store (
        .clk(clk), .rst(rst), .i_empty(empty_store), .i_insn(head_store[127:0]),
        .i_index(head_store[159:128]), .o_dequeue(deq_store), .i_c2s_token(c2s != 16'd0),
        .o_pop_c2s(pop_c2s), .o_push_s2c(push_s2c),
        .o_req_valid(req_valid[3]), .i_req_ready(req_ready[3]), .o_req_addr(req_addr[3*64 +: 64]),
        .o_req_beats(req_beats[3*32 +: 32]), .o_wr_valid(wr_valid[3]), .i_wr_ready(wr_ready[3]),
        .o_wr_data(store_wr_data), .o_wr_strb(store_wr_strb), .o_acc_re(acc_re_store),
        .o_acc_raddr(acc_raddr_store),
        .i_acc_rdata(acc_rdata_store), .o_retired(retired_store), .o_elem_stored(out_elem),
        .o_state(state_store), .o_index(index_store), .o_wait_c2s(wait_c2s));

    // fetch, load and compute only read; store only writes
    assign rd_ready[3] = 1'b0;
    assign wr_valid[2:0] = 3'b000;
    wire [2:0] unused_wr_ready = wr_ready[2:0];
    wire       unused_rd_valid = rd_valid[3];

    vta_mem_arbiter #(.CLIENTS(4), .PORT_BYTES(PORT_BYTES)) arbiter (
        .clk(clk), .rst(rst), .i_req_valid(req_valid), .o_req_ready(req_ready),
        .i_req_write(4'b1000), .i_req_addr(req_addr), .i_req_beats(req_beats),
        .o_rd_valid(rd_valid), .i_rd_ready(rd_ready), .o_rd_data(rd_data),
        .i_wr_valid(wr_valid), .o_wr_ready(wr_ready),
        .i_wr_data({store_wr_data, {3 * PW{1'b0}}}),
        .i_wr_strb({store_wr_strb, {3 * PORT_BYTES{1'b0}}}),
        .o_mem_req_valid(o_mem_req_valid), .i_mem_req_ready(i_mem_req_ready),
        .o_mem_req_write(o_mem_req_write), .o_mem_req_addr(o_mem_req_addr),
        .o_mem_req_beats(o_mem_req_beats), .o_mem_req_id(o_mem_req_id),
        .i_mem_rd_valid(i_mem_rd_valid), .o_mem_rd_ready(o_mem_rd_ready),
        .i_mem_rd_data(i_mem_rd_data), .i_mem_rd_id(i_mem_rd_id),
        .i_mem_wr_ready(i_mem_wr_ready), .i_mem_wr_id(i_mem_wr_id),
        .o_mem_wr_valid(o_mem_wr_valid), .o_mem_wr_data(o_mem_wr_data),
        .o_mem_wr_strb(o_mem_wr_strb));

    vta_regs #(.UOP_BYTES(4), .WGT_BYTES(WGT_W / 8), .INP_BYTES(INP_W / 8),
               .ACC_BYTES(ACC_W / 8), .OUT_BYTES(LANES)) regs (
        .clk(clk), .rst(rst), .i_reg_we(i_reg_we), .i_reg_addr(i_reg_addr),
        .i_reg_wdata(i_reg_wdata), .o_reg_rdata(o_reg_rdata), .o_start(start),
        .o_insn_addr(insn_addr), .o_insn_count(insn_count), .i_finished(finished),
        .i_gemm_busy(gemm_busy), .i_alu_busy(alu_busy), .i_gemm_uop(gemm_uop),
        .i_alu_uop(alu_uop), .i_wait_l2c(wait_l2c), .i_wait_c2l(wait_c2l),
        .i_wait_c2s(wait_c2s), .i_wait_s2c(wait_s2c), .i_uop_elem(uop_elem),
        .i_wgt_elem(wgt_elem), .i_inp_elem(inp_elem), .i_acc_elem(acc_elem),
        .i_out_elem(out_elem), .i_retired_load(retired_load),
        .i_retired_compute(retired_compute), .i_retired_store(retired_store),
        .i_fetch_status({blocked_module, blocked, routed}),
        .i_load_status({wait_c2l, 1'b0, state_load, index_load}),
        .i_compute_status({wait_s2c, wait_l2c, state_compute, index_compute}),
        .i_store_status({1'b0, wait_c2s, state_store, index_store}),
        .i_tokens({s2c, c2s, c2l, l2c}));

    assign o_done = finished;
endmodule

`default_nettype wire
