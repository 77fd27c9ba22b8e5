// vta_sram: an on-chip buffer with one write port and one registered read port.
//
// A read presents i_raddr with i_re in one cycle and sees the word in o_rdata the next;
// o_rdata holds its word through cycles without a read (the port idles). A read and a
// write of the same address in the same cycle return the old word (the accumulator hazard
// rule of docs/vta-isa.md keeps the compute pipeline from relying on either).
`default_nettype none

module vta_sram #(
    parameter integer WIDTH = 128,
    parameter integer DEPTH = 2048
) (
    input  wire             clk,
    input  wire             i_we,
    input  wire [AW-1:0]    i_waddr,
    input  wire [WIDTH-1:0] i_wdata,
    input  wire             i_re,
    input  wire [AW-1:0]    i_raddr,
    output reg  [WIDTH-1:0] o_rdata
);
    localparam integer AW = DEPTH > 1 ? $clog2(DEPTH) : 1;

    reg [WIDTH-1:0] mem [0:DEPTH-1];

    always @(posedge clk) begin
        if (i_we) mem[i_waddr] <= i_wdata;
        if (i_re) o_rdata <= mem[i_raddr];
    end
endmodule

`default_nettype wire
