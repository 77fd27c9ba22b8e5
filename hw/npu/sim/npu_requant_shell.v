// npu_requant_shell: the simulation top for npu_requant (not synthesizable). Streams a batch
// of vectors from host memory slot 0 through the unit, one vector per cycle, and writes the
// results to slot 1, both through byoc.cosim's DPI memory functions.
//
//     slot 0 --(one record per cycle)--> npu_requant (LANES lanes) --> slot 1
//
// Start: hold i_start for one cycle with the vector count on i_count. o_done goes high once
// every result is written (at once for a count of 0) and stays high until the next start.
//
// Record n in slot 0, at byte n * (8 + 8 * LANES), little-endian:
//     bytes 0-1   zero point, int16 (-256..255)     bytes 4-5  qmax, int16 (-256..255)
//     bytes 2-3   qmin, int16 (-256..255)           byte  6    bit 0: int8 output, else uint8
//     byte  7     unused
//     bytes 8 + 4 * l               lane l's accumulator, int32
//     bytes 8 + 4 * LANES + 4 * l   lane l's multiplier, float32
// Results in slot 1: lane l of vector n at byte n * LANES + l.
`default_nettype none

module npu_requant_shell #(
    parameter integer LANES = 16
) (
    input  wire        clk,
    input  wire        rst,
    input  wire        i_start,
    input  wire [31:0] i_count,
    output wire        o_done,
    output reg  [31:0] o_issued,     // vectors read so far
    output reg  [31:0] o_retired     // vectors written so far
);
    import "DPI-C" function longint byoc_mem_read64(input int slot, input longint addr);
    import "DPI-C" function void byoc_mem_write64(input int slot, input longint addr,
                                                  input longint data, input byte strobe);

    localparam integer INPUT_SLOT = 0;
    localparam integer OUTPUT_SLOT = 1;
    localparam integer RECORD_BYTES = 8 + 8 * LANES;
    localparam integer RECORD_WORDS = RECORD_BYTES / 8;
    localparam integer RESULT_WORDS = (LANES + 7) / 8;

    reg                       running;
    reg [31:0]                count;
    reg [63:0]                read_address, write_address;
    reg                       record_valid;
    reg [RECORD_BYTES*8-1:0]  record;
    wire                      result_valid;
    wire [LANES*8-1:0]        result;
    reg  [RESULT_WORDS*64-1:0] result_words;      // the result, zero-padded to whole words

    npu_requant #(.LANES(LANES)) unit (
        .clk(clk), .rst(rst), .i_valid(record_valid),
        .i_acc(record[64 +: LANES*32]), .i_multiplier(record[64 + LANES*32 +: LANES*32]),
        .i_zero_point(record[8:0]), .i_qmin(record[24:16]), .i_qmax(record[40:32]),
        .i_out_signed(record[48]), .o_valid(result_valid), .o_result(result));

    assign o_done = running && o_retired == count;

    always @* begin
        result_words = {(RESULT_WORDS*64){1'b0}};
        result_words[LANES*8-1:0] = result;
    end

    // The byte enables of result word w: the bytes that belong to the vector.
    function automatic [7:0] strobe(input integer word);
        integer bytes_left;
        begin
            bytes_left = LANES - 8 * word;
            strobe = bytes_left >= 8 ? 8'hFF : 8'hFF >> (8 - bytes_left);
        end
    endfunction

    integer word;
    always @(posedge clk) begin
        if (rst) begin
            running      <= 1'b0;
            record_valid <= 1'b0;
            o_issued     <= 32'd0;
            o_retired    <= 32'd0;
        end else if (i_start) begin
            running       <= 1'b1;
            record_valid  <= 1'b0;
            count         <= i_count;
            o_issued      <= 32'd0;
            o_retired     <= 32'd0;
            read_address  <= 64'd0;
            write_address <= 64'd0;
        end else begin
            record_valid <= running && o_issued != count;
            if (running && o_issued != count) begin
                for (word = 0; word < RECORD_WORDS; word = word + 1)
                    record[word*64 +: 64] <= byoc_mem_read64(INPUT_SLOT, read_address + word * 8);
                read_address <= read_address + {32'd0, RECORD_BYTES[31:0]};
                o_issued     <= o_issued + 32'd1;
            end
            if (result_valid) begin
                for (word = 0; word < RESULT_WORDS; word = word + 1)
                    byoc_mem_write64(OUTPUT_SLOT, write_address + word * 8,
                                     result_words[word*64 +: 64], strobe(word));
                write_address <= write_address + {32'd0, LANES[31:0]};
                o_retired     <= o_retired + 32'd1;
            end
        end
    end
endmodule

`default_nettype wire
