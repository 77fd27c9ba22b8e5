// vta_shell: the simulation top. The accelerator (vta_core) with its DRAM (vta_dram, host
// memory slot 0 through byoc.cosim's DPI functions, MEM_LATENCY cycles per request). The
// register port and o_done are the shell's ports; byoc_vta_sim.rtl drives them.
// Built with VTA_WRITE_MONITOR defined, it also logs every buffer and DRAM write with the
// instruction that made it (vta_write_monitor, wired to the core by hierarchical names).
`default_nettype none
`include "vta_config.vh"

module vta_shell (
    input  wire        clk,
    input  wire        rst,
    input  wire        i_reg_we,
    input  wire [4:0]  i_reg_addr,
    input  wire [63:0] i_reg_wdata,
    output wire [63:0] o_reg_rdata,
    output wire        o_done
);
    localparam integer PORT_BYTES = `VTA_MEM_PORT_BITS / 8;

    wire                    req_valid, req_ready, req_write, rd_valid, rd_ready;
    wire                    wr_ready, wr_valid;
    wire [63:0]             req_addr;
    wire [31:0]             req_beats;
    wire [1:0]              req_id, rd_id, wr_id;
    wire [PORT_BYTES*8-1:0] rd_data, wr_data;
    wire [PORT_BYTES-1:0]   wr_strb;

    vta_core core (
        .clk(clk), .rst(rst), .i_reg_we(i_reg_we), .i_reg_addr(i_reg_addr),
        .i_reg_wdata(i_reg_wdata), .o_reg_rdata(o_reg_rdata), .o_done(o_done),
        .o_mem_req_valid(req_valid), .i_mem_req_ready(req_ready),
        .o_mem_req_write(req_write), .o_mem_req_addr(req_addr), .o_mem_req_beats(req_beats),
        .o_mem_req_id(req_id), .i_mem_rd_valid(rd_valid), .o_mem_rd_ready(rd_ready),
        .i_mem_rd_data(rd_data), .i_mem_rd_id(rd_id), .i_mem_wr_ready(wr_ready),
        .i_mem_wr_id(wr_id), .o_mem_wr_valid(wr_valid), .o_mem_wr_data(wr_data),
        .o_mem_wr_strb(wr_strb));

    vta_dram #(.PORT_BYTES(PORT_BYTES), .LATENCY(`VTA_MEM_LATENCY)) dram (
        .clk(clk), .rst(rst), .i_req_valid(req_valid), .o_req_ready(req_ready),
        .i_req_write(req_write), .i_req_addr(req_addr), .i_req_beats(req_beats),
        .i_req_id(req_id), .o_rd_valid(rd_valid), .i_rd_ready(rd_ready), .o_rd_data(rd_data),
        .o_rd_id(rd_id), .o_wr_ready(wr_ready), .o_wr_id(wr_id), .i_wr_valid(wr_valid),
        .i_wr_data(wr_data), .i_wr_strb(wr_strb));

`ifdef VTA_WRITE_MONITOR
    vta_write_monitor #(
        .PORT_BYTES(PORT_BYTES), .INP_W(`VTA_BATCH * `VTA_BLOCK_IN * 8),
        .WGT_W(`VTA_BLOCK_OUT * `VTA_BLOCK_IN * 8), .ACC_W(`VTA_BATCH * `VTA_BLOCK_OUT * 32),
        .UOP_AW($clog2(`VTA_UOP_DEPTH)), .INP_AW($clog2(`VTA_INP_DEPTH)),
        .WGT_AW($clog2(`VTA_WGT_DEPTH)), .ACC_AW($clog2(`VTA_ACC_DEPTH))
    ) monitor (
        .clk(clk), .i_load_index(core.index_load), .i_compute_index(core.index_compute),
        .i_store_index(core.index_store),
        .i_retired({core.retired_store, core.retired_compute, core.retired_load}),
        .i_uop_we(core.uop_we), .i_uop_waddr(core.uop_waddr), .i_uop_wdata(core.uop_wdata),
        .i_wgt_we(core.wgt_we), .i_wgt_waddr(core.wgt_waddr), .i_wgt_wdata(core.wgt_wdata),
        .i_inp_we(core.inp_we), .i_inp_waddr(core.inp_waddr), .i_inp_wdata(core.inp_wdata),
        .i_acc_we(core.acc_we), .i_acc_waddr(core.acc_waddr), .i_acc_wdata(core.acc_wdata),
        .i_dram_we(dram.write_beat), .i_dram_addr(dram.addr), .i_dram_wdata(wr_data),
        .i_dram_strb(wr_strb));
`endif
endmodule

`default_nettype wire
