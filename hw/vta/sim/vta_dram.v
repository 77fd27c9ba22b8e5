// vta_dram: the DRAM behind the accelerator's memory port in simulation (not synthesizable).
//
// The bytes live in host memory slot SLOT, reached through the byoc.cosim DPI functions
// byoc_mem_read64 / byoc_mem_write64, so Python hands in a numpy array and reads the results
// in place while the simulation runs many cycles per call. Timing: requests queue in order
// (up to QUEUE_DEPTH); the request at the head starts LATENCY cycles after it was accepted
// (or when the one before it ends, if later) and then moves one beat per cycle. Read beats
// and write-data slots carry the id of their request for the arbiter.
`default_nettype none

module vta_dram #(
    parameter integer PORT_BYTES = 16,
    parameter integer LATENCY = 32,
    parameter integer QUEUE_DEPTH = 64,
    parameter integer SLOT = 0
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    i_req_valid,
    output wire                    o_req_ready,
    input  wire                    i_req_write,
    input  wire [63:0]             i_req_addr,
    input  wire [31:0]             i_req_beats,
    input  wire [1:0]              i_req_id,
    output reg                     o_rd_valid,
    input  wire                    i_rd_ready,
    output reg  [PORT_BYTES*8-1:0] o_rd_data,
    output reg  [1:0]              o_rd_id,
    output wire                    o_wr_ready,
    output wire [1:0]              o_wr_id,
    input  wire                    i_wr_valid,
    input  wire [PORT_BYTES*8-1:0] i_wr_data,
    input  wire [PORT_BYTES-1:0]   i_wr_strb
);
    import "DPI-C" function longint byoc_mem_read64(input int slot, input longint addr);
    import "DPI-C" function void byoc_mem_write64(input int slot, input longint addr,
                                                  input longint data, input byte strobe);

    localparam integer WORDS = PORT_BYTES / 8;        // 64-bit words per beat
    localparam integer EW = 64 + 32 + 2 + 1 + 64;     // addr, beats, id, write, ready time

    reg  [63:0] now;
    wire        queue_empty;
    wire [EW-1:0] head;
    wire        unused_full;
    wire [$clog2(QUEUE_DEPTH + 1)-1:0] unused_count;

    // the head request being served
    reg        serving;
    reg [63:0] addr;
    reg [31:0] beats_left;
    reg [1:0]  id;
    reg        write;

    // head = {addr, beats, id, write, ready time}
    wire [63:0] head_addr     = head[EW-1 -: 64];
    wire [31:0] head_beats    = head[EW-65 -: 32];
    wire [1:0]  head_id       = head[EW-97 -: 2];
    wire        head_write    = head[64];
    wire [63:0] head_ready_at = head[63:0];
    wire take_head = !serving && !queue_empty && now >= head_ready_at;

    vta_fifo #(.WIDTH(EW), .DEPTH(QUEUE_DEPTH)) requests (
        .clk(clk), .rst(rst), .i_push(i_req_valid && o_req_ready),
        .i_wdata({i_req_addr, i_req_beats, i_req_id, i_req_write, now + {32'd0, LATENCY[31:0]}}),
        .i_pop(take_head), .o_rdata(head), .o_empty(queue_empty), .o_full(unused_full),
        .o_count(unused_count));
    assign o_req_ready = !unused_full;

    wire read_beat  = serving && !write && beats_left != 0 && (!o_rd_valid || i_rd_ready);
    wire write_beat = serving && write && i_wr_valid;
    assign o_wr_ready = serving && write;
    assign o_wr_id    = id;

    integer w;
    always @(posedge clk) begin
        if (rst) begin
            now        <= 64'd0;
            serving    <= 1'b0;
            o_rd_valid <= 1'b0;
        end else begin
            now <= now + 64'd1;
            if (o_rd_valid && i_rd_ready) o_rd_valid <= 1'b0;
            if (take_head) begin
                serving    <= head_beats != 32'd0;
                addr       <= head_addr;
                beats_left <= head_beats;
                id         <= head_id;
                write      <= head_write;
            end
            if (read_beat) begin
                for (w = 0; w < WORDS; w = w + 1)
                    o_rd_data[w*64 +: 64] <= byoc_mem_read64(SLOT, addr + w * 8);
                o_rd_valid <= 1'b1;
                o_rd_id    <= id;
            end
            if (write_beat) begin
                for (w = 0; w < WORDS; w = w + 1)
                    if (i_wr_strb[w*8 +: 8] != 8'd0)
                        byoc_mem_write64(SLOT, addr + w * 8, i_wr_data[w*64 +: 64],
                                         i_wr_strb[w*8 +: 8]);
            end
            if (read_beat || write_beat) begin
                addr       <= addr + {32'd0, PORT_BYTES[31:0]};
                beats_left <= beats_left - 32'd1;
                if (beats_left == 32'd1) serving <= 1'b0;
            end
        end
    end
endmodule

`default_nettype wire
