// vta_regs: the accelerator's control registers and performance counters.
//
// A 64-bit register port: i_reg_we writes register i_reg_addr at the clock edge; o_reg_rdata
// shows register i_reg_addr combinationally.
//
//   addr name           access  meaning
//   0    CTRL           W       bit 0: start (fetch begins at INSN_ADDR); counters restart
//                       R       bit 0: running, bit 1: done (FINISH has run)
//   1    INSN_ADDR      RW      DRAM byte address of the instruction stream
//   2    INSN_COUNT     RW      instructions in the stream
//   3    CYCLES         R       cycles from start to done (or to now)
//   4    GEMM_BUSY      R       cycles the compute module ran a GEMM (pipeline fill included)
//   5    ALU_BUSY       R       cycles the compute module ran an ALU instruction
//   6    GEMM_UOPS      R       GEMM micro-ops executed (reset micro-ops included)
//   7    ALU_UOPS       R       ALU micro-ops executed
//   8    STALL_L2C      R       cycles compute's head instruction waited for a load->compute token
//   9    STALL_C2L      R       ... load's head waited for compute->load
//   10   STALL_C2S      R       ... store's head waited for compute->store
//   11   STALL_S2C      R       ... compute's head waited for store->compute
//   12   BYTES_UOP      R       DRAM bytes read by LOAD UOP (13 WGT, 14 INP, 15 ACC)
//   16   BYTES_OUT      R       DRAM bytes written by STORE
//   17   INSNS_LOAD     R       instructions the load module ran (18 compute, 19 store)
//   20   FETCH_STATUS   R       [31:0] instructions routed, [32] routing blocked by a full queue,
//                               [34:33] that queue's module (0 load, 1 compute, 2 store)
//   21   LOAD_STATUS    R       [31:0] stream index of the head/running instruction,
//                               [33:32] state (0 empty, 1 waiting for tokens, 2 running),
//                               [34] waits for its pop_prev token, [35] for its pop_next token
//   22   COMPUTE_STATUS R       as LOAD_STATUS     23 STORE_STATUS   R   as LOAD_STATUS
//   24   TOKENS         R       tokens held: [15:0] L2C, [31:16] C2L, [47:32] C2S, [63:48] S2C
`default_nettype none

module vta_regs #(
    parameter integer UOP_BYTES = 4,
    parameter integer WGT_BYTES = 256,
    parameter integer INP_BYTES = 16,
    parameter integer ACC_BYTES = 64,
    parameter integer OUT_BYTES = 16
) (
    input  wire        clk,
    input  wire        rst,
    input  wire        i_reg_we,
    input  wire [4:0]  i_reg_addr,
    input  wire [63:0] i_reg_wdata,
    output reg  [63:0] o_reg_rdata,
    // control
    output wire        o_start,
    output reg  [63:0] o_insn_addr,
    output reg  [31:0] o_insn_count,
    input  wire        i_finished,
    // events, one cycle each
    input  wire        i_gemm_busy,
    input  wire        i_alu_busy,
    input  wire        i_gemm_uop,
    input  wire        i_alu_uop,
    input  wire        i_wait_l2c,
    input  wire        i_wait_c2l,
    input  wire        i_wait_c2s,
    input  wire        i_wait_s2c,
    input  wire        i_uop_elem,
    input  wire        i_wgt_elem,
    input  wire        i_inp_elem,
    input  wire        i_acc_elem,
    input  wire        i_out_elem,
    input  wire        i_retired_load,
    input  wire        i_retired_compute,
    input  wire        i_retired_store,
    // status
    input  wire [34:0] i_fetch_status,
    input  wire [35:0] i_load_status,
    input  wire [35:0] i_compute_status,
    input  wire [35:0] i_store_status,
    input  wire [63:0] i_tokens
);
    localparam integer COUNTERS = 17;         // registers 3 .. 19

    reg        running;
    reg [63:0] counter [3:19];

    assign o_start = i_reg_we && i_reg_addr == 5'd0 && i_reg_wdata[0];

    wire [COUNTERS-1:0] event_now = {
        i_retired_store, i_retired_compute, i_retired_load,                  // 19 .. 17
        i_out_elem, i_acc_elem, i_inp_elem, i_wgt_elem, i_uop_elem,          // 16 .. 12
        i_wait_s2c, i_wait_c2s, i_wait_c2l, i_wait_l2c,                      // 11 .. 8
        i_alu_uop, i_gemm_uop, i_alu_busy, i_gemm_busy,                      // 7 .. 4
        1'b1};                                                               // 3: CYCLES

    function automatic [63:0] step_of(input integer reg_index);
        case (reg_index)
            12: step_of = {32'd0, UOP_BYTES[31:0]};
            13: step_of = {32'd0, WGT_BYTES[31:0]};
            14: step_of = {32'd0, INP_BYTES[31:0]};
            15: step_of = {32'd0, ACC_BYTES[31:0]};
            16: step_of = {32'd0, OUT_BYTES[31:0]};
            default: step_of = 64'd1;
        endcase
    endfunction

    integer r;
    always @(posedge clk) begin
        if (rst) begin
            running      <= 1'b0;
            o_insn_addr  <= 64'd0;
            o_insn_count <= 32'd0;
            for (r = 3; r <= 19; r = r + 1) counter[r] <= 64'd0;
        end else begin
            if (i_reg_we && i_reg_addr == 5'd1) o_insn_addr <= i_reg_wdata;
            if (i_reg_we && i_reg_addr == 5'd2) o_insn_count <= i_reg_wdata[31:0];
            if (o_start) begin
                running <= 1'b1;
                for (r = 3; r <= 19; r = r + 1) counter[r] <= 64'd0;
            end else if (running) begin
                if (i_finished) running <= 1'b0;
                for (r = 3; r <= 19; r = r + 1)
                    if (event_now[r - 3]) counter[r] <= counter[r] + step_of(r);
            end
        end
    end

    always @* begin
        case (i_reg_addr)
            5'd0:  o_reg_rdata = {62'd0, i_finished, running};
            5'd1:  o_reg_rdata = o_insn_addr;
            5'd2:  o_reg_rdata = {32'd0, o_insn_count};
            5'd20: o_reg_rdata = {29'd0, i_fetch_status};
            5'd21: o_reg_rdata = {28'd0, i_load_status};
            5'd22: o_reg_rdata = {28'd0, i_compute_status};
            5'd23: o_reg_rdata = {28'd0, i_store_status};
            5'd24: o_reg_rdata = i_tokens;
            default: o_reg_rdata = i_reg_addr >= 5'd3 && i_reg_addr <= 5'd19
                                   ? counter[i_reg_addr] : 64'd0;
        endcase
    end
endmodule

`default_nettype wire
