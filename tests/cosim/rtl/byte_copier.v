// byte_copier: copies i_length bytes from DPI memory slot 0 to slot 1, BYTES_PER_CYCLE bytes
// per clock, so that byoc.cosim's tests have a small design that uses the host memories.
//
//            i_start, i_length
//                   |
//                   v
//   slot 0 --> byoc_mem_read64(word) --> byoc_mem_write64(word, strobe) --> slot 1
//                   ^                                  |
//                   +------- o_bytes_copied <----------+---> o_busy, o_done
//
// Timing: the rising edge that sees i_start while idle latches i_length; each later edge
// copies one chunk of BYTES_PER_CYCLE bytes (fewer for the last one), and o_done rises at the
// edge that copies the last chunk: ceil(i_length / BYTES_PER_CYCLE) cycles after the start
// edge. A length of 0 raises o_done at the start edge. o_done stays high until the next start.
//
// Every access is an aligned 8-byte word; the strobe selects the chunk's bytes. A chunk never
// crosses a word because BYTES_PER_CYCLE divides 8 (the macro BYTE_COPIER_BYTES_PER_CYCLE
// sets its default, so tests can change it with a define).
`default_nettype none

`ifndef BYTE_COPIER_BYTES_PER_CYCLE
`define BYTE_COPIER_BYTES_PER_CYCLE 4
`endif

module byte_copier #(
    parameter integer BYTES_PER_CYCLE = `BYTE_COPIER_BYTES_PER_CYCLE
) (
    input  wire        i_clk,
    input  wire        i_rst,
    input  wire        i_start,
    input  wire [31:0] i_length,
    output reg         o_busy,
    output reg         o_done,
    output reg  [31:0] o_bytes_copied
);
    import "DPI-C" function longint byoc_mem_read64(input int slot, input longint addr);
    import "DPI-C" function void byoc_mem_write64(input int slot, input longint addr,
                                                  input longint data, input byte strobe);

    localparam integer SOURCE = 0;
    localparam integer DESTINATION = 1;

    reg  [31:0] length;
    wire [31:0] remaining = length - o_bytes_copied;
    wire        last_chunk = remaining <= BYTES_PER_CYCLE;
    wire [31:0] chunk = last_chunk ? remaining : BYTES_PER_CYCLE;
    wire [63:0] word_address = {32'd0, o_bytes_copied[31:3], 3'd0};
    // chunk low bytes set (8'hff << 8 is 0 in 8 bits, so a whole word has all 8), shifted
    // to the chunk's place in its word
    wire [7:0]  strobe = ~(8'hff << chunk[3:0]) << o_bytes_copied[2:0];

    always @(posedge i_clk) begin
        if (i_rst) begin
            length <= 32'd0;
            o_busy <= 1'b0;
            o_done <= 1'b0;
            o_bytes_copied <= 32'd0;
        end else if (o_busy) begin
            byoc_mem_write64(DESTINATION, word_address, byoc_mem_read64(SOURCE, word_address),
                             strobe);
            o_bytes_copied <= o_bytes_copied + chunk;
            if (last_chunk) begin
                o_busy <= 1'b0;
                o_done <= 1'b1;
            end
        end else if (i_start) begin
            length <= i_length;
            o_bytes_copied <= 32'd0;
            o_busy <= i_length != 32'd0;
            o_done <= i_length == 32'd0;
        end
    end
endmodule

`default_nettype wire
