// vta_write_monitor: every write the accelerator makes, logged with the instruction that made
// it (simulation only; vta_shell instantiates it when VTA_WRITE_MONITOR is defined).
//
//     load module    --> INP, WGT buffer write ports --+
//     compute module --> UOP, ACC buffer write ports --+--> one record per write, through
//     store module   --> DRAM write beats (vta_dram) --+    the byoc.cosim event log
//     every module   --> retirement ------------------+    (DPI byoc_log64)
//
// A write is attributed to the instruction its module is running (the dispatchers' o_index):
// a module runs one instruction at a time and every write of it happens while it runs.
// byoc_vta_sim.first_difference reads the records; each is 64-bit words:
//
//     word 0   the clock cycle of the rising edge that writes (cycles since the model was
//              loaded, as byoc.cosim.CosimModel.cycles counts them)
//     word 1   kind << 56 | strobe << 48 | instruction index (32 bits)
//     word 2   the buffer row written, or the DRAM byte address of a 64-bit word
//     word 3.. the data, least significant word first: UOP 1 word, INP INP_W / 64 (at least
//              1), WGT WGT_W / 64, ACC ACC_W / 64, DRAM 1 (its strobe says which bytes)
//
// Kinds follow the ISA's memory types (docs/vta-isa.md): UOP 0, WGT 1, INP 2, ACC 3, and
// DRAM 4 (what a STORE of OUT writes); the strobe is 0xff but for DRAM words. Kind 5 is no
// write: the instruction retired (word 2 is its module, 0 load, 1 compute, 2 store; no data).
`default_nettype none

module vta_write_monitor #(
    parameter integer PORT_BYTES = 16,
    parameter integer INP_W = 128,
    parameter integer WGT_W = 2048,
    parameter integer ACC_W = 512,
    parameter integer UOP_AW = 13,
    parameter integer INP_AW = 11,
    parameter integer WGT_AW = 10,
    parameter integer ACC_AW = 11
) (
    input  wire                    clk,
    input  wire [31:0]             i_load_index,
    input  wire [31:0]             i_compute_index,
    input  wire [31:0]             i_store_index,
    input  wire [2:0]              i_retired,       // load, compute, store (bits 0, 1, 2)
    input  wire                    i_uop_we,
    input  wire [UOP_AW-1:0]       i_uop_waddr,
    input  wire [31:0]             i_uop_wdata,
    input  wire                    i_wgt_we,
    input  wire [WGT_AW-1:0]       i_wgt_waddr,
    input  wire [WGT_W-1:0]        i_wgt_wdata,
    input  wire                    i_inp_we,
    input  wire [INP_AW-1:0]       i_inp_waddr,
    input  wire [INP_W-1:0]        i_inp_wdata,
    input  wire                    i_acc_we,
    input  wire [ACC_AW-1:0]       i_acc_waddr,
    input  wire [ACC_W-1:0]        i_acc_wdata,
    input  wire                    i_dram_we,       // a write beat reaches the DRAM
    input  wire [63:0]             i_dram_addr,
    input  wire [PORT_BYTES*8-1:0] i_dram_wdata,
    input  wire [PORT_BYTES-1:0]   i_dram_strb
);
    import "DPI-C" function void byoc_log64(input longint word);

    localparam [7:0] UOP = 8'd0, WGT = 8'd1, INP = 8'd2, ACC = 8'd3, DRAM = 8'd4, RETIRE = 8'd5;
    localparam integer INP_WORDS = INP_W < 64 ? 1 : INP_W / 64;
    localparam integer WGT_WORDS = WGT_W / 64;
    localparam integer ACC_WORDS = ACC_W / 64;
    localparam integer PORT_WORDS = PORT_BYTES / 8;

    reg [63:0] cycle = 64'd0;
    wire [63:0] edge_cycle = cycle + 64'd1;
    wire [INP_WORDS*64-1:0] inp_words = {{(INP_WORDS * 64 - INP_W){1'b0}}, i_inp_wdata};

    task automatic header(input [7:0] kind, input [7:0] strobe, input [31:0] index,
                          input [63:0] where);
        begin
            byoc_log64(edge_cycle);
            byoc_log64({kind, strobe, 16'd0, index});
            byoc_log64(where);
        end
    endtask

    integer w;
    always @(posedge clk) begin
        cycle <= edge_cycle;
        if (i_uop_we) begin
            header(UOP, 8'hff, i_compute_index, {{(64 - UOP_AW){1'b0}}, i_uop_waddr});
            byoc_log64({32'd0, i_uop_wdata});
        end
        if (i_wgt_we) begin
            header(WGT, 8'hff, i_load_index, {{(64 - WGT_AW){1'b0}}, i_wgt_waddr});
            for (w = 0; w < WGT_WORDS; w = w + 1) byoc_log64(i_wgt_wdata[w*64 +: 64]);
        end
        if (i_inp_we) begin
            header(INP, 8'hff, i_load_index, {{(64 - INP_AW){1'b0}}, i_inp_waddr});
            for (w = 0; w < INP_WORDS; w = w + 1) byoc_log64(inp_words[w*64 +: 64]);
        end
        if (i_acc_we) begin
            header(ACC, 8'hff, i_compute_index, {{(64 - ACC_AW){1'b0}}, i_acc_waddr});
            for (w = 0; w < ACC_WORDS; w = w + 1) byoc_log64(i_acc_wdata[w*64 +: 64]);
        end
        if (i_dram_we) begin
            for (w = 0; w < PORT_WORDS; w = w + 1) begin
                if (i_dram_strb[w*8 +: 8] != 8'd0) begin
                    header(DRAM, i_dram_strb[w*8 +: 8], i_store_index, i_dram_addr + w * 8);
                    byoc_log64(i_dram_wdata[w*64 +: 64]);
                end
            end
        end
        if (i_retired[0]) header(RETIRE, 8'hff, i_load_index, 64'd0);
        if (i_retired[1]) header(RETIRE, 8'hff, i_compute_index, 64'd1);
        if (i_retired[2]) header(RETIRE, 8'hff, i_store_index, 64'd2);
    end
endmodule

`default_nettype wire
