// vta_compute: the compute module. Runs, in order, LOAD UOP and LOAD ACC (DMA into the
// micro-op and accumulator buffers), GEMM, ALU and FINISH. Tokens: pop_prev takes load->
// compute, pop_next store->compute; push_prev gives compute->load, push_next compute->store.
//
//     compute queue --> vta_dispatch --+--> vta_loader (UOP) --> UOP buffer
//        L2C S2C ^        | C2L C2S   +--> vta_loader (ACC) --> ACC write (or pipeline's)
//                                      +--> GEMM / ALU pipeline:
//
//     A  vta_uop_loop reads uop[u]                  (micro-op buffer, registered read)
//     B  indices = uop fields + loop offsets; read what the micro-op uses: ACC[dst] (not
//        for a reset or an overwriting GEMM), INP[src] and WGT[wgt] (GEMM), ACC[src] (ALU
//        without immediate)
//     C  vta_gemm dot products added to ACC[dst] (to 0 when overwriting) | vta_alu result
//        (registered, enabled by the micro-op)
//     D  ACC[dst] = reset ? 0 : GEMM ? sum : ALU result   (write)
//
// Buffers are read, and the multipliers and ALU lanes switch, only in cycles whose micro-op
// needs them: an idle or resetting pipeline leaves them and their registers still.
// One micro-op enters per cycle. Micro-op n reads ACC at the end of B and writes at the end
// of D, two cycles later: micro-ops n+1 and n+2 read the old value. That is the accumulator
// hazard rule of docs/vta-isa.md, which the compiler keeps (the validator checks it).
// An instruction ends when its last micro-op has been written; FINISH raises o_finished.
`default_nettype none
`include "vta_config.vh"

module vta_compute #(
    parameter integer PORT_BYTES = 16,
    parameter integer BATCH = 1,
    parameter integer BLOCK_IN = 16,
    parameter integer BLOCK_OUT = 16,
    parameter integer UOP_DEPTH = 8192,
    parameter integer INP_DEPTH = 2048,
    parameter integer WGT_DEPTH = 1024,
    parameter integer ACC_DEPTH = 2048
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    i_empty,
    input  wire [127:0]            i_insn,
    input  wire [31:0]             i_index,
    output wire                    o_dequeue,
    // tokens
    input  wire                    i_l2c_token,
    input  wire                    i_s2c_token,
    output wire                    o_pop_l2c,
    output wire                    o_pop_s2c,
    output wire                    o_push_c2l,
    output wire                    o_push_c2s,
    // memory client (read only)
    output wire                    o_req_valid,
    input  wire                    i_req_ready,
    output wire [63:0]             o_req_addr,
    output wire [31:0]             o_req_beats,
    input  wire                    i_rd_valid,
    output wire                    o_rd_ready,
    input  wire [PORT_BYTES*8-1:0] i_rd_data,
    // buffers
    output wire                    o_uop_we,
    output wire [UOP_AW-1:0]       o_uop_waddr,
    output wire [31:0]             o_uop_wdata,
    output wire                    o_uop_re,
    output wire [UOP_AW-1:0]       o_uop_raddr,
    input  wire [31:0]             i_uop_rdata,
    output wire                    o_inp_re,
    output wire [INP_AW-1:0]       o_inp_raddr,
    input  wire [INP_W-1:0]        i_inp_rdata,
    output wire                    o_wgt_re,
    output wire [WGT_AW-1:0]       o_wgt_raddr,
    input  wire [WGT_W-1:0]        i_wgt_rdata,
    output wire                    o_acc_we,
    output wire [ACC_AW-1:0]       o_acc_waddr,
    output wire [ACC_W-1:0]        o_acc_wdata,
    output wire                    o_acc_re_dst,
    output wire [ACC_AW-1:0]       o_acc_raddr_dst,
    input  wire [ACC_W-1:0]        i_acc_rdata_dst,
    output wire                    o_acc_re_src,
    output wire [ACC_AW-1:0]       o_acc_raddr_src,
    input  wire [ACC_W-1:0]        i_acc_rdata_src,
    // status and counters
    output wire                    o_retired,
    output reg                     o_finished,
    output wire                    o_uop_elem_loaded,
    output wire                    o_acc_elem_loaded,
    output wire                    o_gemm_uop,        // a GEMM micro-op is written this cycle
    output wire                    o_alu_uop,
    output wire                    o_gemm_busy,
    output wire                    o_alu_busy,
    output wire [1:0]              o_state,
    output wire [31:0]             o_index,
    output wire                    o_wait_l2c,
    output wire                    o_wait_s2c
);
    localparam integer LANES = BATCH * BLOCK_OUT;
    localparam integer INP_W = BATCH * BLOCK_IN * 8;
    localparam integer WGT_W = BLOCK_OUT * BLOCK_IN * 8;
    localparam integer ACC_W = LANES * 32;
    localparam integer UOP_AW = UOP_DEPTH > 1 ? $clog2(UOP_DEPTH) : 1;
    localparam integer INP_AW = INP_DEPTH > 1 ? $clog2(INP_DEPTH) : 1;
    localparam integer WGT_AW = WGT_DEPTH > 1 ? $clog2(WGT_DEPTH) : 1;
    localparam integer ACC_AW = ACC_DEPTH > 1 ? $clog2(ACC_DEPTH) : 1;

    wire start, exec_busy;

    vta_dispatch dispatch (
        .clk(clk), .rst(rst), .i_empty(i_empty), .i_head(i_insn), .i_head_index(i_index),
        .i_prev_token(i_l2c_token), .i_next_token(i_s2c_token), .i_exec_busy(exec_busy),
        .o_start(start), .o_pop_prev(o_pop_l2c), .o_pop_next(o_pop_s2c),
        .o_push_prev(o_push_c2l), .o_push_next(o_push_c2s), .o_retired(o_retired),
        .o_state(o_state), .o_index(o_index), .o_missing_prev(o_wait_l2c),
        .o_missing_next(o_wait_s2c));
    assign o_dequeue = start;

    // -- decode at start ---------------------------------------------------------------------
    wire [2:0] opcode   = i_insn[`VTA_INSN_OPCODE];
    wire [2:0] mem_type = i_insn[`VTA_MEM_MEMORY_TYPE];
    wire is_load  = opcode == `VTA_OP_LOAD;
    wire is_gemm  = opcode == `VTA_OP_GEMM;
    wire is_alu   = opcode == `VTA_OP_ALU;
    wire start_uop  = start && is_load && mem_type == `VTA_MEM_UOP;
    wire start_acc  = start && is_load && mem_type == `VTA_MEM_ACC;
    wire start_loop = start && (is_gemm || is_alu);

    reg        run_acc_load;      // which loader owns the memory port
    reg        run_finish;
    reg        run_gemm, run_alu;
    reg        reset_op, overwrite, use_imm;
    reg [2:0]  alu_op;
    reg [31:0] imm;

    always @(posedge clk) begin
        if (rst) begin
            o_finished <= 1'b0;
            run_gemm   <= 1'b0;
            run_alu    <= 1'b0;
            run_finish <= 1'b0;
        end else if (start) begin
            run_acc_load <= start_acc;
            run_gemm     <= is_gemm;
            run_alu      <= is_alu;
            reset_op     <= i_insn[`VTA_GEMM_RESET];
            overwrite    <= is_gemm && i_insn[`VTA_GEMM_OVERWRITE];
            alu_op       <= i_insn[`VTA_ALU_ALU_OP];
            use_imm      <= i_insn[`VTA_ALU_USE_IMM];
            imm          <= {{16{i_insn[127]}}, i_insn[`VTA_ALU_IMM]};
            run_finish   <= opcode == `VTA_OP_FINISH;
        end else if (o_retired && run_finish) begin
            // done once FINISH has retired, so its tokens and its count are in
            o_finished <= 1'b1;
        end
    end

    // -- LOAD UOP / LOAD ACC -----------------------------------------------------------------
    wire        uop_req_valid, acc_req_valid, uop_rd_ready, acc_rd_ready, uop_busy, acc_busy;
    wire [63:0] uop_req_addr, acc_req_addr;
    wire [31:0] uop_req_beats, acc_req_beats;
    wire              load_acc_we;
    wire [ACC_AW-1:0] load_acc_waddr;
    wire [ACC_W-1:0]  load_acc_wdata;

    vta_loader #(.PORT_BYTES(PORT_BYTES), .ELEM_BYTES(4), .DEPTH(UOP_DEPTH)) uop_loader (
        .clk(clk), .rst(rst), .i_start(start_uop),
        .i_insn(i_insn), .o_busy(uop_busy), .o_req_valid(uop_req_valid), .i_req_ready(i_req_ready && !run_acc_load),
        .o_req_addr(uop_req_addr), .o_req_beats(uop_req_beats),
        .i_rd_valid(i_rd_valid && !run_acc_load), .o_rd_ready(uop_rd_ready),
        .i_rd_data(i_rd_data), .o_we(o_uop_we), .o_waddr(o_uop_waddr), .o_wdata(o_uop_wdata),
        .o_data_written(o_uop_elem_loaded));

    vta_loader #(.PORT_BYTES(PORT_BYTES), .ELEM_BYTES(ACC_W / 8), .DEPTH(ACC_DEPTH)) acc_loader (
        .clk(clk), .rst(rst), .i_start(start_acc),
        .i_insn(i_insn), .o_busy(acc_busy), .o_req_valid(acc_req_valid), .i_req_ready(i_req_ready && run_acc_load),
        .o_req_addr(acc_req_addr), .o_req_beats(acc_req_beats),
        .i_rd_valid(i_rd_valid && run_acc_load), .o_rd_ready(acc_rd_ready),
        .i_rd_data(i_rd_data), .o_we(load_acc_we), .o_waddr(load_acc_waddr),
        .o_wdata(load_acc_wdata), .o_data_written(o_acc_elem_loaded));

    assign o_req_valid = run_acc_load ? acc_req_valid : uop_req_valid;
    assign o_req_addr  = run_acc_load ? acc_req_addr : uop_req_addr;
    assign o_req_beats = run_acc_load ? acc_req_beats : uop_req_beats;
    assign o_rd_ready  = run_acc_load ? acc_rd_ready : uop_rd_ready;

    // -- GEMM / ALU pipeline -----------------------------------------------------------------
    wire        loop_busy, valid_b;
    wire [15:0] dst_b, src_b, wgt_b;

    vta_uop_loop #(.UOP_DEPTH(UOP_DEPTH)) loop (
        .clk(clk), .rst(rst), .i_start(start_loop), .i_insn(i_insn), .i_is_gemm(is_gemm),
        .o_busy(loop_busy), .o_uop_re(o_uop_re), .o_uop_raddr(o_uop_raddr),
        .i_uop_rdata(i_uop_rdata), .o_valid(valid_b), .o_dst(dst_b), .o_src(src_b), .o_wgt(wgt_b));

    wire gemm_b = valid_b && run_gemm && !reset_op;
    assign o_acc_re_dst    = valid_b && !reset_op && !overwrite;
    assign o_acc_re_src    = valid_b && run_alu && !reset_op && !use_imm;
    assign o_inp_re        = gemm_b;
    assign o_wgt_re        = gemm_b;
    assign o_acc_raddr_dst = dst_b[ACC_AW-1:0];
    assign o_acc_raddr_src = src_b[ACC_AW-1:0];
    assign o_inp_raddr     = src_b[INP_AW-1:0];
    assign o_wgt_raddr     = wgt_b[WGT_AW-1:0];

    // stage C: buffer data arrives; multiply-accumulate, or run the ALU lanes
    reg              valid_c, valid_d;
    reg [ACC_AW-1:0] dst_c, dst_d;
    wire [ACC_W-1:0] sum_d, alu_d;
    wire [ACC_W-1:0] operand = use_imm ? {LANES{imm}} : i_acc_rdata_src;
    wire [ACC_W-1:0] addend  = overwrite ? {ACC_W{1'b0}} : i_acc_rdata_dst;
    wire gemm_c = valid_c && run_gemm && !reset_op;
    wire alu_c  = valid_c && run_alu && !reset_op;

    vta_gemm #(.BATCH(BATCH), .BLOCK_IN(BLOCK_IN), .BLOCK_OUT(BLOCK_OUT)) gemm (
        .clk(clk), .i_enable(gemm_c), .i_acc(addend), .i_inp(i_inp_rdata),
        .i_wgt(i_wgt_rdata), .o_sum(sum_d));
    vta_alu #(.LANES(LANES)) alu (
        .clk(clk), .i_enable(alu_c), .i_op(alu_op), .i_a(i_acc_rdata_dst), .i_x(operand),
        .o_result(alu_d));

    // stage D: write back
    always @(posedge clk) begin
        if (rst || start) begin
            valid_c <= 1'b0;
            valid_d <= 1'b0;
        end else begin
            valid_c <= valid_b;
            dst_c   <= dst_b[ACC_AW-1:0];
            valid_d <= valid_c;
            dst_d   <= dst_c;
        end
    end

    wire loop_we = valid_d;
    assign o_acc_we    = loop_we || load_acc_we;
    assign o_acc_waddr = loop_we ? dst_d : load_acc_waddr;
    assign o_acc_wdata = !loop_we ? load_acc_wdata
                       : reset_op ? {ACC_W{1'b0}} : run_gemm ? sum_d : alu_d;

    assign o_gemm_uop  = valid_d && run_gemm;
    assign o_alu_uop   = valid_d && run_alu;
    assign exec_busy   = uop_busy || acc_busy || loop_busy || valid_c || valid_d;
    assign o_gemm_busy = run_gemm && (loop_busy || valid_c || valid_d);
    assign o_alu_busy  = run_alu && (loop_busy || valid_c || valid_d);
endmodule

`default_nettype wire
